using System.Globalization;

namespace MLNetCompress.ML.Distillation;

/// <summary>The ML.NET multiclass trainer a student is trained with; each takes example weights, which is what
/// the soft-target expansion needs.</summary>
public enum StudentTrainer
{
    /// <summary>Multinomial logistic regression by L-BFGS (<c>LbfgsMaximumEntropy</c>): a linear softmax model.</summary>
    LbfgsMaximumEntropy,

    /// <summary>Multinomial logistic regression by stochastic dual coordinate ascent (<c>SdcaMaximumEntropy</c>).</summary>
    SdcaMaximumEntropy,

    /// <summary>Gradient-boosted trees with LightGBM's softmax (<c>multiclass</c>) objective.</summary>
    LightGbm,
}

/// <summary>How the student's features are scaled before training (the scaling is part of the saved model).</summary>
public enum FeatureNormalization
{
    /// <summary>Min-max for the maximum-entropy students (their optimisers want comparable feature scales), none for
    /// LightGBM (trees do not care).</summary>
    Auto,

    /// <summary>No scaling.</summary>
    None,

    /// <summary>Each feature scaled by its largest magnitude in the training data (ML.NET's <c>NormalizeMinMax</c>).</summary>
    MinMax,

    /// <summary>Each feature scaled to unit variance (ML.NET's <c>NormalizeMeanVariance</c>).</summary>
    MeanVariance,
}

/// <summary>
/// Options of a <see cref="DistillationTrainer"/>. The student learns the target
/// <c>q = α·onehot(y) + (1 − α)·p_T</c>, where <c>p_T = softmax(z / T)</c> is the teacher's soft label at temperature
/// <see cref="Temperature"/> and <c>y</c> the hard label.
/// </summary>
public sealed record DistillationOptions
{
    /// <summary>The ML.NET trainer behind the student (default L-BFGS maximum entropy).</summary>
    public StudentTrainer Trainer { get; init; } = StudentTrainer.LbfgsMaximumEntropy;

    /// <summary>
    /// α in [0, 1]: the weight of the hard label in the target. 0 (the default) trains on the teacher's soft labels
    /// only; 1 is plain hard-label training (the teacher is ignored). Rows whose label is unknown (-1) use α = 0.
    /// </summary>
    public double Alpha { get; init; }

    /// <summary>
    /// T &gt; 0: the temperature the soft labels were made at (<c>softmax(z / T)</c>); it must be the one the soft-label
    /// file was written with. A higher T flattens the teacher's distribution so the student sees how the teacher
    /// ranks the wrong classes ("dark knowledge"). The student is fitted at T — its logits stand for the teacher's
    /// logits divided by T — and the saved model multiplies them back by T, so its probabilities are meant for T = 1.
    /// Default 1.
    /// </summary>
    public double Temperature { get; init; } = 1;

    /// <summary>
    /// Targets below this value are dropped (fewer expanded rows, faster training) and the row's remaining targets are
    /// renormalised to sum to 1; the largest target of a row is always kept. 0 keeps every non-zero target.
    /// Default 1e-3. The number dropped and the probability mass they held are reported in <see cref="ExpansionReport"/>.
    /// </summary>
    public double DropThreshold { get; init; } = 1e-3;

    /// <summary>Seed for the trainer's randomness (SDCA's shuffling, LightGBM's seed); null uses the
    /// <see cref="Microsoft.ML.MLContext"/>'s own. L-BFGS is deterministic either way.</summary>
    public int? Seed { get; init; }

    /// <summary>The feature vector column (float, fixed size) of the soft-label data and of the data the student
    /// will score. Default "Features".</summary>
    public string FeatureColumnName { get; init; } = "Features";

    /// <summary>The hard label column (Int32, class index, -1 when unknown); it may be absent when α is 0.
    /// Default "Label".</summary>
    public string LabelColumnName { get; init; } = "Label";

    /// <summary>The soft-label column (float vector of the class count). Default "SoftLabel".</summary>
    public string SoftLabelColumnName { get; init; } = "SoftLabel";

    /// <summary>Feature scaling before the trainer; <see cref="FeatureNormalization.Auto"/> by default.</summary>
    public FeatureNormalization Normalization { get; init; } = FeatureNormalization.Auto;

    /// <summary>Class names for the predicted label's key values (and the score's slots); null names the classes
    /// "0" … "C−1".</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>Maximum-entropy students: the optimiser's iteration cap (L-BFGS: <c>MaximumNumberOfIterations</c>,
    /// SDCA: passes over the data). LightGBM: boosting rounds (<c>NumberOfIterations</c>). Null: the trainer's default.</summary>
    public int? MaximumIterations { get; init; }

    /// <summary>
    /// Maximum-entropy students only: the L2 weight λ of <c>mean cross-entropy + λ/2·‖w‖²</c> over the source rows.
    /// L-BFGS averages its loss over the example weights, which sum to the source row count, so λ is passed as is;
    /// SDCA averages over rows, so λ is scaled by source rows / expanded rows to keep the same objective.
    /// Null: the trainer's default (L-BFGS 1; SDCA tunes its own from the expanded row count).
    /// </summary>
    public float? L2Regularization { get; init; }

    /// <summary>LightGBM only: leaves per tree. Null: LightGBM's default.</summary>
    public int? NumberOfLeaves { get; init; }

    /// <summary>LightGBM only: the learning rate. Null: LightGBM's default.</summary>
    public double? LearningRate { get; init; }

    /// <summary>LightGBM only: the fewest expanded rows in a leaf. Null: LightGBM's default.</summary>
    public int? MinimumExampleCountPerLeaf { get; init; }

    /// <summary>Threads for the trainer; null lets it choose (one per core).</summary>
    public int? NumberOfThreads { get; init; }

    /// <summary>Checks every value; the message names the option and the range it takes.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range.</exception>
    /// <exception cref="ArgumentException">An option is set that the chosen trainer does not use, or a name is empty.</exception>
    public void Validate()
    {
        if (!(Alpha is >= 0 and <= 1))
            throw new ArgumentOutOfRangeException(nameof(Alpha), Alpha, $"alpha must be in [0, 1], not {F(Alpha)}");
        if (!(Temperature > 0) || !double.IsFinite(Temperature) || Temperature > 1000)
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, $"temperature must be in (0, 1000], not {F(Temperature)}");
        if (!(DropThreshold is >= 0 and < 1))
            throw new ArgumentOutOfRangeException(nameof(DropThreshold), DropThreshold, $"drop threshold must be in [0, 1), not {F(DropThreshold)}");
        if (MaximumIterations is <= 0)
            throw new ArgumentOutOfRangeException(nameof(MaximumIterations), MaximumIterations, "maximum iterations must be at least 1");
        if (NumberOfThreads is <= 0)
            throw new ArgumentOutOfRangeException(nameof(NumberOfThreads), NumberOfThreads, "threads must be at least 1");
        if (L2Regularization is { } l2 && !(l2 >= 0 && float.IsFinite(l2)))
            throw new ArgumentOutOfRangeException(nameof(L2Regularization), l2, "L2 regularization must be a finite number of at least 0");
        if (NumberOfLeaves is < 2)
            throw new ArgumentOutOfRangeException(nameof(NumberOfLeaves), NumberOfLeaves, "leaves must be at least 2");
        if (LearningRate is { } lr && !(lr > 0 && double.IsFinite(lr)))
            throw new ArgumentOutOfRangeException(nameof(LearningRate), lr, "learning rate must be a positive number");
        if (MinimumExampleCountPerLeaf is <= 0)
            throw new ArgumentOutOfRangeException(nameof(MinimumExampleCountPerLeaf), MinimumExampleCountPerLeaf, "minimum examples per leaf must be at least 1");
        foreach (var (name, value) in new[] { (nameof(FeatureColumnName), FeatureColumnName), (nameof(LabelColumnName), LabelColumnName), (nameof(SoftLabelColumnName), SoftLabelColumnName) })
            if (string.IsNullOrWhiteSpace(value)) throw new ArgumentException($"{name} must name a column", name);

        bool trees = Trainer == StudentTrainer.LightGbm;
        if (trees && L2Regularization is not null)
            throw new ArgumentException("L2 regularization applies to the maximum-entropy students, not LightGBM", nameof(L2Regularization));
        if (!trees && (NumberOfLeaves is not null || MinimumExampleCountPerLeaf is not null || LearningRate is not null))
            throw new ArgumentException($"leaves, learning rate and minimum examples per leaf apply to LightGBM, not {Trainer}", nameof(NumberOfLeaves));
    }

    /// <summary>The normalisation <see cref="FeatureNormalization.Auto"/> stands for with this trainer.</summary>
    public FeatureNormalization EffectiveNormalization => Normalization != FeatureNormalization.Auto
        ? Normalization
        : Trainer == StudentTrainer.LightGbm ? FeatureNormalization.None : FeatureNormalization.MinMax;

    private static string F(double v) => v.ToString(CultureInfo.InvariantCulture);
}
