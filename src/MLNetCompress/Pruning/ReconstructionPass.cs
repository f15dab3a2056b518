using MLNetCompress.Calibration;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization;
using MLNetCompress.Runtime;

namespace MLNetCompress.Pruning;

/// <summary>
/// Pruning with reconstruction instead of retraining: the mask is chosen as <see cref="MagnitudePruningPass"/> chooses
/// it, then each layer's kept weights are re-fitted to minimize ‖XW − XŴ‖² over the layer's real inputs X on
/// calibration data (closed form per output row from XᵀX, see <see cref="ReconstructionOptions.Damping"/>). Layers go in
/// graph order and each one's XᵀX is taken from the model with the earlier layers already pruned and re-fitted, so a
/// later layer corrects what the earlier ones lost.
/// </summary>
/// <remarks>
/// Re-fitted: main-graph Gemm (transA = 0), MatMul with a constant rank-2 right operand, and 2-D Conv with one group
/// (XᵀX over its im2col patches). Other pruned weights, and weights read by more than one node, keep the magnitude
/// result with a note. One ONNX Runtime session and one pass over the calibration data per re-fitted layer.
/// </remarks>
public sealed class ReconstructionPass : LayerReportingPass<ReconstructionPlan>
{
    /// <summary>Creates the pass.</summary>
    /// <exception cref="ArgumentException">The options are inconsistent or out of range.</exception>
    public ReconstructionPass(ReconstructionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
    }

    /// <summary>The options.</summary>
    public ReconstructionOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "pruning-reconstruction";

    /// <inheritdoc />
    protected override IEnumerable<LayerChange> LayerChanges(ReconstructionPlan plan)
    {
        // A re-fitted weight moved where it was kept too, not only where it was zeroed.
        var fitted = plan.Layers.ToDictionary(l => l.Name, StringComparer.Ordinal);
        return plan.Pruning.Layers.Select(l => fitted.TryGetValue(l.Name, out var f)
            ? l.ToLayerChange() with { MaxAbsError = f.MaxAbsChange }
            : l.ToLayerChange());
    }

    /// <inheritdoc />
    protected override ReconstructionPlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(context);
        var pruning = new MagnitudePruningPass(Options.EffectivePruning).Preview(graph, context);
        var notes = new List<string>();
        var layers = new List<ReconstructedLayer>();
        var work = graph.Clone();
        // The whole mask goes into the working copy first: every layer then sees inputs from a pruned model, and the
        // ones re-fitted before it have their fitted values.
        foreach (var layer in pruning.Layers)
            if (layer.Site.Scope == graph.Main) work.Main.ReplaceConstant(layer.Name, LayerWeights.Encode(layer.Site, layer.Values));

        for (int k = 0; k < pruning.Layers.Count; k++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "reconstruct", k, pruning.Layers.Count);
            var layer = pruning.Layers[k];
            if (Geometry.Of(graph, layer.Site, out string? why) is not { } geometry)
            {
                notes.Add($"{layer.Name} ({layer.OpType}): kept as magnitude pruning left it; {why}");
                continue;
            }
            var stats = Collect(work, geometry, Options.Calibration, Options.CalibrationSettings, context.Cancellation);
            var original = TensorData.ToFloatArray(layer.Site.Tensor);
            var (before, after) = ReconstructionSolver.Refit(stats.SecondMoment(), geometry.Inputs, original, layer.Values,
                geometry.Rows, geometry.RowStride, geometry.ColStride, Options.Damping);
            double maxChange = 0;
            for (int i = 0; i < original.Length; i++) maxChange = Math.Max(maxChange, Math.Abs((double)original[i] - layer.Values[i]));
            var done = new ReconstructedLayer(layer.Name, layer.OpType, before, after, stats.Count, maxChange);
            context.Log?.Invoke(done.ToString());
            layers.Add(done);
            work.Main.ReplaceConstant(layer.Name, LayerWeights.Encode(layer.Site, layer.Values));
        }
        context.Report(Name, "reconstruct", pruning.Layers.Count, pruning.Layers.Count);
        return new ReconstructionPlan(pruning, layers, notes);
    }

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, ReconstructionPlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(context);
        var changes = new List<string>();
        var fitted = plan.Layers.ToDictionary(l => l.Name, StringComparer.Ordinal);
        foreach (var layer in plan.Pruning.Layers)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            if (layer.Zeros == layer.ZerosBefore && !fitted.ContainsKey(layer.Name)) continue;
            layer.Site.Scope.ReplaceConstant(layer.Name, LayerWeights.Encode(layer.Site, layer.Values));
            changes.Add(fitted.TryGetValue(layer.Name, out var f) ? $"{layer}; {f}" : layer.ToString());
        }
        var skipped = plan.Pruning.Skipped.Concat(plan.Notes).ToList();
        if (plan.Pruning.Sensitivity is { } profile) skipped.Add(profile.ToString());
        return changes.Count == 0 ? PassResult.Unchanged(Name, skipped) : new PassResult(Name, true, changes, skipped);
    }

    /// <summary>Runs the working model once over the calibration data and accumulates XᵀX of the layer's input vectors.</summary>
    internal static RunningCovariance Collect(ModelGraph work, Geometry geometry, IDataFeed calibration, CalibrationOptions settings, CancellationToken cancellationToken)
    {
        string input = geometry.Input;
        using var runner = ModelRunner.Load(CalibrationCollector.WithOutputs(work, [input]), settings.Runtime, settings.Log, [input]);
        var stats = new RunningCovariance(geometry.Inputs);
        var patch = new float[geometry.Inputs];
        long rows = 0;
        foreach (var batch in calibration.Batches(settings.BatchSize, settings.MaxRows))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var t = runner.Run(batch)[input];
            if (geometry.Conv is { } conv) conv.AddPatches(stats, t.Data, t.Shape, patch, Math.Max(1, settings.MaxVectorsPerRow));
            else
            {
                if (t.Shape.Count == 0 || t.Shape[^1] != geometry.Inputs)
                    throw new InvalidOperationException($"'{input}' is [{string.Join(",", t.Shape)}]; its last axis should be {geometry.Inputs}.");
                long vectors = t.Data.Length / geometry.Inputs;
                int stride = (int)Math.Max(1, vectors / Math.Max(1, batch.RowCount) / Math.Max(1, settings.MaxVectorsPerRow));
                stats.AddTensor(t.Data, t.Shape, -1, stride);
            }
            rows += batch.RowCount;
        }
        if (rows == 0) throw new InvalidOperationException($"the calibration data ({calibration.Description}) gave no rows.");
        return stats;
    }

    /// <summary>How a weight's values map to output rows and which value feeds the layer.</summary>
    internal sealed record Geometry(string Input, int Inputs, int Rows, int RowStride, int ColStride, ConvPatches? Conv)
    {
        public static Geometry? Of(ModelGraph graph, WeightSite site, out string? reason)
        {
            reason = null;
            var node = site.Consumer;
            var dims = site.Dims;
            if (site.Scope != graph.Main) { reason = "only main-graph layers are re-fitted."; return null; }
            if (site.Scope.Consumers(site.Name).Count != 1) { reason = "read by more than one node; one fit cannot serve them all."; return null; }
            if (site.InputIndex != 1) { reason = "the constant is the left operand; only x·W is re-fitted."; return null; }
            switch (node.OpType)
            {
                case "Gemm" when dims.Length == 2:
                    if (WeightInputs.IntAttribute(node, "transA", 0) != 0) { reason = "Gemm with transA is not re-fitted."; return null; }
                    return WeightInputs.IntAttribute(node, "transB", 0) != 0
                        ? new Geometry(node.Input[0], (int)dims[1], (int)dims[0], (int)dims[1], 1, null)
                        : new Geometry(node.Input[0], (int)dims[0], (int)dims[1], 1, (int)dims[1], null);
                case "MatMul" when dims.Length == 2:
                    return new Geometry(node.Input[0], (int)dims[0], (int)dims[1], 1, (int)dims[1], null);
                case "Conv" when dims.Length == 4:
                    if (ConvPatches.Of(node, dims, out reason) is not { } conv) return null;
                    int d = checked((int)(dims[1] * dims[2] * dims[3]));
                    return new Geometry(node.Input[0], d, (int)dims[0], d, 1, conv);
                default:
                    reason = $"a {node.OpType} weight of rank {dims.Length} is not re-fitted (Gemm, rank-2 MatMul and 2-D Conv are).";
                    return null;
            }
        }
    }

    /// <summary>The im2col view of a 2-D Conv: each output position's receptive field as one vector in weight order (c, ky, kx).</summary>
    internal sealed record ConvPatches(int Kh, int Kw, int StrideH, int StrideW, int DilationH, int DilationW, long[] Pads, string AutoPad)
    {
        public static ConvPatches? Of(NodeProto node, long[] dims, out string? reason)
        {
            reason = null;
            if (WeightInputs.IntAttribute(node, "group", 1) != 1) { reason = "grouped Conv is not re-fitted."; return null; }
            long[] strides = Ints(node, "strides") ?? [1, 1];
            long[] dilations = Ints(node, "dilations") ?? [1, 1];
            long[] pads = Ints(node, "pads") ?? [0, 0, 0, 0];
            string autoPad = node.Attribute.FirstOrDefault(a => a.Name == "auto_pad")?.S.ToStringUtf8() ?? "NOTSET";
            if (strides.Length != 2 || dilations.Length != 2 || pads.Length != 4) { reason = "Conv attributes are not 2-D."; return null; }
            return new ConvPatches((int)dims[2], (int)dims[3], (int)strides[0], (int)strides[1], (int)dilations[0], (int)dilations[1], pads, autoPad);
        }

        private static long[]? Ints(NodeProto node, string name) =>
            node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.Ints.ToArray() : null;

        /// <summary>Begin padding and output length of one spatial axis, auto_pad included.</summary>
        private (int Begin, int Out) Axis(int size, int k, int stride, int dilation, long padBegin, long padEnd)
        {
            int extent = (k - 1) * dilation + 1;
            switch (AutoPad)
            {
                case "SAME_UPPER" or "SAME_LOWER":
                    int outLen = (size + stride - 1) / stride;
                    int total = Math.Max(0, (outLen - 1) * stride + extent - size);
                    return (AutoPad == "SAME_UPPER" ? total / 2 : total - total / 2, outLen);
                case "VALID":
                    return (0, (size - extent) / stride + 1);
                default:
                    return ((int)padBegin, (int)((size + padBegin + padEnd - extent) / stride + 1));
            }
        }

        /// <summary>Adds the patches of an NCHW batch, at most <paramref name="maxPerImage"/> evenly spaced per image.</summary>
        public void AddPatches(RunningCovariance stats, ReadOnlySpan<float> x, IReadOnlyList<long> shape, float[] patch, int maxPerImage)
        {
            if (shape.Count != 4 || shape[1] * Kh * Kw != stats.Dim)
                throw new InvalidOperationException($"Conv input [{string.Join(",", shape)}] does not match {stats.Dim} weights per filter.");
            int n = (int)shape[0], c = (int)shape[1], height = (int)shape[2], width = (int)shape[3];
            var (top, outH) = Axis(height, Kh, StrideH, DilationH, Pads[0], Pads[2]);
            var (left, outW) = Axis(width, Kw, StrideW, DilationW, Pads[1], Pads[3]);
            int positions = outH * outW;
            int step = Math.Max(1, positions / maxPerImage);
            for (int img = 0; img < n; img++)
                for (int pos = 0; pos < positions; pos += step)
                {
                    int oy = pos / outW, ox = pos % outW;
                    int at = 0;
                    for (int ch = 0; ch < c; ch++)
                    {
                        int plane = (img * c + ch) * height * width;
                        for (int ky = 0; ky < Kh; ky++)
                        {
                            int y = oy * StrideH - top + ky * DilationH;
                            for (int kx = 0; kx < Kw; kx++, at++)
                            {
                                int xx = ox * StrideW - left + kx * DilationW;
                                // Outside the image is the zero padding.
                                patch[at] = y >= 0 && y < height && xx >= 0 && xx < width ? x[plane + y * width + xx] : 0f;
                            }
                        }
                    }
                    stats.Add(patch);
                }
        }
    }
}
