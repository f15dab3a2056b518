using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;

namespace MLNetCompress.Pruning;

/// <summary>
/// Unstructured magnitude pruning of the constant weights of Conv, ConvTranspose, Gemm and MatMul: sets the
/// smallest-magnitude values to exactly zero, per layer (a target sparsity, or |w| ≤ rate·std, the classic rule),
/// over all layers at once (one global threshold, or per-layer sparsities chosen by measured sensitivity on calibration
/// data, see <see cref="SensitivityAllocation"/>), and/or in an N:M pattern along each layer's reduction axis.
/// The graph keeps its shape and ops; only weight values change (store them compactly with
/// <see cref="SparseStoragePass"/>).
/// </summary>
/// <remarks>
/// The N:M groups run along the axis the layer sums over, which is where sparse tensor cores want them:
/// Conv input channels (axis 1 of [M, C/g, kh, kw], one group per output channel and kernel position, as in
/// NVIDIA's ASP), ConvTranspose input channels (axis 0 of [C, M/g, kh, kw]), Gemm K (axis 1 of B with transB,
/// else axis 0) and MatMul K (axis rank−2 of a constant B). A layer whose reduction length is not a multiple
/// of M is skipped with a reason.
/// </remarks>
public sealed class MagnitudePruningPass : LayerReportingPass<PruningPlan>
{
    /// <summary>Creates the pass.</summary>
    /// <exception cref="ArgumentException">The options are inconsistent or out of range.</exception>
    public MagnitudePruningPass(PruningOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
    }

    /// <summary>The options.</summary>
    public PruningOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "magnitude-pruning";

    /// <inheritdoc />
    protected override IEnumerable<LayerChange> LayerChanges(PruningPlan plan) =>
        plan.Layers.Select(l => l.ToLayerChange());

    /// <inheritdoc />
    protected override PruningPlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(context);
        var skipped = new List<string>();
        var sites = LayerWeights.Find(graph, Options.Ops, Options.Exclude, Options.MinElements, skipped);

        var work = new List<(WeightSite Site, float[] Original, float[] Values, long ZerosBefore, float Threshold, bool InGlobalPool)>();
        for (int k = 0; k < sites.Count; k++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "prune", k, sites.Count);
            var site = sites[k];
            var original = TensorData.ToFloatArray(site.Tensor);
            var values = (float[])original.Clone();
            if (Options.Pattern is { } pattern && !TryApplyPattern(site, values, pattern, out string? why))
            {
                skipped.Add($"{site.Name} ({site.Consumer.OpType} in {site.Scope.Path}): {why}");
                continue;
            }
            float threshold = float.NaN;
            bool pooled = false;
            if (Options.LayerSparsity.TryGetValue(site.Name, out double own)) threshold = PruneToSparsity(values, own);
            else if (Options.Allocation != SparsityAllocation.Uniform) pooled = true;
            else if (Options.Sparsity is double s) threshold = PruneToSparsity(values, s);
            else if (Options.StdRate is double rate)
            {
                // The classic rule reads the layer's own spread, before any pattern zeroed part of it.
                threshold = (float)(rate * MagnitudeSelection.StandardDeviation(original));
                MagnitudeSelection.ZeroAtOrBelow(values, threshold);
            }
            work.Add((site, original, values, MagnitudeSelection.CountZeros(original), threshold, pooled));
        }

        float? global = null;
        SensitivityProfile? profile = null;
        var damage = new Dictionary<string, double>(StringComparer.Ordinal);
        var pool = work.Where(w => w.InGlobalPool).ToList();
        if (pool.Count > 0)
        {
            long total = pool.Sum(w => w.Values.LongLength);
            long k = (long)Math.Round(Options.Sparsity!.Value * total);
            if (Options.Allocation == SparsityAllocation.Sensitivity)
            {
                profile = SensitivityAllocation.Measure(graph, pool.Select(w => (w.Site, w.Values)).ToList(), Options.Calibration!,
                    Options.SensitivitySettings, context, Name);
                var curves = profile.Curves;
                long least = curves.Sum(c => c.Zeros[0]), most = curves.Sum(c => c.Zeros[^1]);
                if (k < least) skipped.Add($"sensitivity allocation: the layers already hold {least} zeros, more than the {k} asked for; none were added.");
                if (k > most) skipped.Add($"sensitivity allocation: {k} zeros asked for, but the grid's highest sparsity reaches {most}; stopped there.");
                var counts = SensitivityAllocation.Allocate(curves, Math.Clamp(k, least, most));
                for (int at = 0, j = 0; at < work.Count; at++)
                {
                    if (!work[at].InGlobalPool) continue;
                    var w = work[at];
                    work[at] = w with { Threshold = PruneToCount(w.Values, counts[j]) };
                    damage[w.Site.Name] = curves[j].DamageAt(counts[j]);
                    j++;
                }
            }
            else if (k > 0)
            {
                var memories = pool.Select(w => (ReadOnlyMemory<float>)w.Values).ToList();
                float t = MagnitudeSelection.KthSmallestMagnitude(memories, k, out long below);
                long ties = k - below;
                // Equal magnitudes at the threshold go in graph order, so the total is exactly k.
                foreach (var w in pool) ties -= MagnitudeSelection.ZeroBelow(w.Values, t, ties);
                global = t;
            }
        }

        var layers = new List<PrunedLayer>(work.Count);
        foreach (var w in work)
        {
            float maxPruned = 0;
            for (int i = 0; i < w.Values.Length; i++)
                if (w.Values[i] == 0) maxPruned = MathF.Max(maxPruned, MathF.Abs(w.Original[i]));
            bool byThreshold = w.InGlobalPool && Options.Allocation == SparsityAllocation.Global;
            layers.Add(new PrunedLayer(w.Site, w.Values, w.ZerosBefore, byThreshold ? global ?? 0 : w.Threshold, Options.Pattern, maxPruned,
                damage.TryGetValue(w.Site.Name, out double d) ? d : null));
        }
        context.Report(Name, "prune", sites.Count, sites.Count);
        return new PruningPlan(layers, skipped, global, profile);
    }

    /// <summary>Zeroes exactly round(s·n) values of smallest magnitude (zeros already there count); returns the threshold.</summary>
    private static float PruneToSparsity(float[] values, double sparsity) => PruneToCount(values, (long)Math.Round(sparsity * values.Length));

    /// <summary>Zeroes exactly <paramref name="k"/> values of smallest magnitude (zeros already there count; ties go in
    /// index order); returns the threshold.</summary>
    internal static float PruneToCount(float[] values, long k)
    {
        if (k <= 0) return 0;
        float t = MagnitudeSelection.KthSmallestMagnitude([values], k, out long below);
        MagnitudeSelection.ZeroBelow(values, t, k - below);
        return t;
    }

    private static bool TryApplyPattern(WeightSite site, float[] values, NMPattern pattern, out string? reason)
    {
        var dims = site.Dims;
        if (LayerWeights.ReductionAxis(site.Consumer, site.InputIndex, dims.Length) is not int axis)
        {
            reason = $"a weight of rank {dims.Length} has no reduction axis for {site.Consumer.OpType}; no {pattern} pattern.";
            return false;
        }
        long outer = 1, inner = 1;
        for (int d = 0; d < axis; d++) outer *= dims[d];
        for (int d = axis + 1; d < dims.Length; d++) inner *= dims[d];
        if (dims[axis] % pattern.M != 0)
        {
            reason = $"its reduction axis {axis} has {dims[axis]} values, not a multiple of {pattern.M}; no {pattern} pattern.";
            return false;
        }
        MagnitudeSelection.ApplyNM(values, (int)outer, (int)dims[axis], (int)inner, pattern.N, pattern.M);
        reason = null;
        return true;
    }

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, PruningPlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(context);
        var changes = new List<string>(plan.Layers.Count);
        foreach (var layer in plan.Layers)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            if (layer.Zeros == layer.ZerosBefore) continue; // nothing to write
            layer.Site.Scope.ReplaceConstant(layer.Name, LayerWeights.Encode(layer.Site, layer.Values));
            changes.Add(layer.ToString());
        }
        // The measurement's cost goes with the notes, beside what was skipped.
        IReadOnlyList<string> notes = plan.Sensitivity is { } profile ? [.. plan.Skipped, profile.ToString()] : plan.Skipped;
        return changes.Count == 0 ? PassResult.Unchanged(Name, notes) : new PassResult(Name, true, changes, notes);
    }
}
