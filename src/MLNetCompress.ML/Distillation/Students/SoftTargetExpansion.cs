using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetCompress.ML.Distillation;

/// <summary>
/// Turns soft-label rows into the weighted hard-label rows an ML.NET multiclass trainer takes: row <c>i</c> becomes one
/// row per class <c>c</c> with label <c>c</c> and example weight <c>q_ic</c>, where
/// <c>q_i = α·onehot(y_i) + (1 − α)·p_i</c>. Targets below the drop threshold are dropped (the row's largest is
/// always kept) and the rest renormalised to sum to 1, so every source row carries weight 1 in all.
/// </summary>
/// <remarks>
/// Why this is exact: a maximum-entropy trainer's loss for a row with label <c>c</c> and weight <c>w</c> is
/// <c>−w·log s_c</c>, with <c>s</c> the student's softmax. The expanded rows of source row <c>i</c> therefore add
/// <c>Σ_c q_ic·(−log s_ic)</c> — the cross-entropy of the student against the target <c>q_i</c> — and the data term
/// over the expanded set is the sum of these cross-entropies. LightGBM's softmax objective takes weights the same
/// way (each row's gradient and hessian are multiplied by its weight). The per-row weights sum to 1, so weight-averaged
/// losses (L-BFGS) and the L2 term keep their balance; see <see cref="DistillationOptions.L2Regularization"/> for SDCA.
/// </remarks>
internal static class SoftTargetExpansion
{
    /// <summary>The expanded view's class column: a key of C values.</summary>
    public const string ClassColumn = "Label";

    /// <summary>The expanded view's example weight column.</summary>
    public const string WeightColumn = "Weight";

    /// <summary>
    /// The targets of one row: writes the kept classes and their renormalised weights, and returns how many were kept.
    /// </summary>
    /// <param name="soft">The teacher's soft label (non-negative; renormalised here, so a top-k vector is fine).</param>
    /// <param name="label">The hard label, or -1 when unknown (then α is taken as 0).</param>
    /// <param name="alpha">α in [0, 1].</param>
    /// <param name="threshold">Targets below it are dropped, except the largest.</param>
    /// <param name="target">Scratch of at least C values; holds q before dropping on return.</param>
    /// <param name="classes">Receives the kept classes.</param>
    /// <param name="weights">Receives their weights (summing to 1).</param>
    /// <param name="zero">Targets that were exactly 0.</param>
    /// <param name="dropped">Non-zero targets dropped.</param>
    /// <param name="droppedMass">The probability they held.</param>
    /// <exception cref="ArgumentException">The soft label has a negative or non-finite entry, or no mass.</exception>
    public static int Targets(ReadOnlySpan<float> soft, int label, double alpha, double threshold,
        Span<double> target, Span<int> classes, Span<float> weights, out int zero, out int dropped, out double droppedMass)
    {
        double sum = 0;
        foreach (var p in soft)
        {
            if (!(p >= 0) || !float.IsFinite(p)) throw new ArgumentException($"the soft label has an entry {p.ToString(CultureInfo.InvariantCulture)}; probabilities must be finite and non-negative");
            sum += p;
        }
        if (!(sum > 0)) throw new ArgumentException("the soft label is all zeros; it must hold a probability distribution");

        double a = label >= 0 ? alpha : 0;
        var best = 0;
        for (var c = 0; c < soft.Length; c++)
        {
            target[c] = (1 - a) * (soft[c] / sum) + (c == label ? a : 0);
            if (target[c] > target[best]) best = c;
        }

        int kept = 0;
        zero = dropped = 0;
        droppedMass = 0;
        double keptMass = 0;
        for (var c = 0; c < soft.Length; c++)
        {
            var q = target[c];
            if (q <= 0) { zero++; continue; }
            if (q < threshold && c != best) { dropped++; droppedMass += q; continue; }
            classes[kept] = c;
            weights[kept] = (float)q;
            keptMass += q;
            kept++;
        }
        // Renormalise in double, then round once: the kept weights sum to 1 up to float rounding.
        for (var k = 0; k < kept; k++) weights[k] = (float)(target[classes[k]] / keptMass);
        return kept;
    }

    /// <summary>Reads the soft-label view and builds the expanded, weighted training view.</summary>
    /// <exception cref="ArgumentException">A column is missing or of the wrong type, or a row's values are invalid
    /// (the message names the row).</exception>
    public static ExpandedSet Expand(MLContext ml, IDataView softLabels, DistillationOptions options)
    {
        ArgumentNullException.ThrowIfNull(ml);
        ArgumentNullException.ThrowIfNull(softLabels);
        ArgumentNullException.ThrowIfNull(options);
        if (options.FeatureColumnName is ClassColumn or WeightColumn)
            throw new ArgumentException($"the feature column may not be called '{options.FeatureColumnName}': the expanded rows use that name for the class and weight; rename it", nameof(options));
        var (features, soft, label) = Columns(softLabels.Schema, options);
        int featureCount = ((VectorDataViewType)features.Type).Size;
        int classCount = ((VectorDataViewType)soft.Type).Size;
        if (options.ClassNames is { } names && names.Count != classCount)
            throw new ArgumentException($"{names.Count} class names were given for {classCount} classes; give one name per class", nameof(options));

        var columns = label is { } l ? new[] { features, soft, l } : new[] { features, soft };
        var rows = new List<ExpandedRow>();
        var target = new double[classCount];
        var classes = new int[classCount];
        var weights = new float[classCount];
        var softValues = new float[classCount];
        long sourceRows = 0, labeled = 0, zeroTargets = 0, droppedTargets = 0;
        double droppedMass = 0, maxDropped = 0;

        using (var cursor = softLabels.GetRowCursor(columns))
        {
            var getFeatures = cursor.GetGetter<VBuffer<float>>(features);
            var getSoft = cursor.GetGetter<VBuffer<float>>(soft);
            var getLabel = label is { } lc ? cursor.GetGetter<int>(lc) : null;
            VBuffer<float> featureBuffer = default, softBuffer = default;
            int y = -1;
            while (cursor.MoveNext())
            {
                getFeatures(ref featureBuffer);
                getSoft(ref softBuffer);
                getLabel?.Invoke(ref y);
                if (y < -1 || y >= classCount)
                    throw new ArgumentException($"soft-label row {sourceRows} has label {y}; labels are class indices in [0, {classCount - 1}] or -1 for unknown", nameof(softLabels));
                if (y >= 0) labeled++;
                // Features are copied once per source row and shared by its expanded rows.
                var x = new float[featureCount];
                featureBuffer.CopyTo(x);
                softBuffer.CopyTo(softValues);
                int kept, zero, dropped;
                double mass;
                try
                {
                    kept = Targets(softValues, y, options.Alpha, options.DropThreshold, target, classes, weights, out zero, out dropped, out mass);
                }
                catch (ArgumentException e)
                {
                    throw new ArgumentException($"soft-label row {sourceRows}: {e.Message}", nameof(softLabels), e);
                }
                for (var k = 0; k < kept; k++)
                    rows.Add(new ExpandedRow { Features = x, Label = (uint)classes[k], Weight = weights[k] });
                zeroTargets += zero;
                droppedTargets += dropped;
                droppedMass += mass;
                maxDropped = Math.Max(maxDropped, mass);
                sourceRows++;
            }
        }
        if (sourceRows == 0) throw new ArgumentException("the soft-label data has no rows; generate soft labels for at least one row", nameof(softLabels));
        if (options.Alpha > 0 && labeled == 0)
            throw new ArgumentException($"alpha is {options.Alpha.ToString(CultureInfo.InvariantCulture)} but no row has a hard label; use alpha 0 or soft labels made from labelled data", nameof(options));

        var report = new ExpansionReport(classCount, featureCount, sourceRows, labeled, rows.Count, zeroTargets, droppedTargets, droppedMass, maxDropped);
        return new ExpandedSet(ml.Data.LoadFromEnumerable(rows, Definition(options.FeatureColumnName, featureCount, classCount, options.ClassNames)), report);
    }

    private static SchemaDefinition Definition(string featureColumn, int featureCount, int classCount, IReadOnlyList<string>? classNames)
    {
        var definition = SchemaDefinition.Create(typeof(ExpandedRow));
        definition[nameof(ExpandedRow.Features)].ColumnName = featureColumn;
        definition[nameof(ExpandedRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, featureCount);
        var labelColumn = definition[nameof(ExpandedRow.Label)];
        labelColumn.ColumnType = new KeyDataViewType(typeof(uint), classCount);
        labelColumn.AddAnnotation(AnnotationKeyValues, ClassNameBuffer(classCount, classNames), new VectorDataViewType(TextDataViewType.Instance, classCount));
        return definition;
    }

    private const string AnnotationKeyValues = "KeyValues";

    private static VBuffer<ReadOnlyMemory<char>> ClassNameBuffer(int classCount, IReadOnlyList<string>? classNames) =>
        new(classCount, Enumerable.Range(0, classCount)
            .Select(c => (classNames?[c] ?? c.ToString(CultureInfo.InvariantCulture)).AsMemory()).ToArray());

    /// <summary>Finds and checks the soft-label view's columns; the label column is optional.</summary>
    public static (DataViewSchema.Column Features, DataViewSchema.Column Soft, DataViewSchema.Column? Label) Columns(DataViewSchema schema, DistillationOptions options)
    {
        var features = schema.GetColumnOrNull(options.FeatureColumnName)
            ?? throw new ArgumentException($"the data has no column '{options.FeatureColumnName}'; set {nameof(DistillationOptions.FeatureColumnName)} to its feature vector column", nameof(schema));
        if (features.Type is not VectorDataViewType { ItemType: NumberDataViewType fi, Size: > 0 } || fi != NumberDataViewType.Single)
            throw new ArgumentException($"column '{features.Name}' is {features.Type}; features must be a float vector of known size", nameof(schema));
        var soft = schema.GetColumnOrNull(options.SoftLabelColumnName)
            ?? throw new ArgumentException($"the data has no column '{options.SoftLabelColumnName}'; set {nameof(DistillationOptions.SoftLabelColumnName)} to its soft-label column", nameof(schema));
        if (soft.Type is not VectorDataViewType { ItemType: NumberDataViewType si, Size: >= 2 } || si != NumberDataViewType.Single)
            throw new ArgumentException($"column '{soft.Name}' is {soft.Type}; soft labels must be a float vector of at least 2 classes", nameof(schema));
        var label = schema.GetColumnOrNull(options.LabelColumnName);
        if (label is { } l && l.Type != NumberDataViewType.Int32)
            throw new ArgumentException($"column '{l.Name}' is {l.Type}; the hard label must be Int32 (class index, -1 when unknown)", nameof(schema));
        return (features, soft, label);
    }

    /// <summary>One expanded row. Public members: ML.NET reads them by reflection.</summary>
    internal sealed class ExpandedRow
    {
        public float[] Features { get; set; } = [];

        /// <summary>The class index, 0-based: ML.NET stores a key field's value v as key v + 1.</summary>
        public uint Label { get; set; }

        public float Weight { get; set; }
    }
}

/// <summary>The expanded training view and what the expansion did.</summary>
internal sealed record ExpandedSet(IDataView Data, ExpansionReport Report);
