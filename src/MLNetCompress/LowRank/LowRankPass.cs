using System.Globalization;
using MLNetCompress.Calibration;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.LowRank;

/// <summary>
/// Splits Gemm, MatMul and Conv layers with a constant float weight into low-rank pairs (or a Tucker-2 triple):
/// Gemm/MatMul W ≈ U·V as two nodes, the bias on the second (Gemm's transA, transB, alpha and beta kept);
/// Conv by channel split, spatial split or Tucker-2 (<see cref="ConvFactorization"/>), stride, pads, dilations
/// and auto_pad moved onto the conv that keeps the spatial extent. With calibration data the factors minimize
/// the output error instead of the weight error, layer by layer in graph order.
/// </summary>
/// <remarks>
/// Main-graph layers only. A BatchNormalization that alone follows a Conv is folded into the factors first
/// (<see cref="LowRankOptions.FoldBatchNorm"/>), so that errors are weighed after its per-channel scale. A split is
/// kept only when it has fewer parameters than the weight (unless <see cref="LowRankOptions.RequireFewerParameters"/> is off). Grouped and depthwise convs, shared weights,
/// non-float weights, weights a caller may override and MatMuls whose constant is the left operand are left
/// alone with a reason. Needs nothing beyond opset 1 ops; Gemm without C is written with a zero C below opset 11.
/// </remarks>
public sealed partial class LowRankPass : LayerReportingPass<LowRankPlan>
{
    /// <summary>Creates the pass.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public LowRankPass(LowRankOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
    }

    /// <summary>The options.</summary>
    public LowRankOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "low-rank";

    /// <summary>The plan of the most recent run on this instance (per-layer ranks, parameters, MACs, errors), or null before any.</summary>
    public LowRankPlan? LastPlan { get; private set; }

    /// <inheritdoc />
    protected override IEnumerable<LayerChange> LayerChanges(LowRankPlan plan) =>
        plan.Layers.Select(l => l.ToLayerChange());

    // ---- plan -------------------------------------------------------------------------------

    /// <summary>A layer that may be split: its node, weight and the weight's values.</summary>
    private sealed record Candidate(NodeProto Node, string Weight, long[] Dims, float[] Values, double[]? Bias, bool CanAddBias, string Output, NodeProto? Norm);

    /// <inheritdoc />
    protected override LowRankPlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(context);
        var skipped = new List<string>();
        var candidates = Discover(graph, skipped);
        if (Options.Criterion == RankCriterion.Search) return Search(graph, candidates, skipped, context);
        var layers = FactorizeAll(graph, candidates,
            c => Options.LayerRankRatios is { } fixedRatios && fixedRatios.TryGetValue(c.Weight, out double r) ? AtRatio(r) : Options, skipped, context);
        return new LowRankPlan(layers, skipped);
    }

    /// <summary>
    /// Factorizes <paramref name="candidates"/>, each with the options <paramref name="optionsFor"/> gives it: one by one
    /// from the weights, or data-aware in stages over a working copy of <paramref name="graph"/>.
    /// </summary>
    private List<LowRankLayer> FactorizeAll(ModelGraph graph, IReadOnlyList<Candidate> candidates, Func<Candidate, LowRankOptions> optionsFor,
        List<string> skipped, PassContext context)
    {
        var layers = new List<LowRankLayer>();
        if (Options.Calibration is null)
        {
            for (int k = 0; k < candidates.Count; k++)
            {
                context.Cancellation.ThrowIfCancellationRequested();
                context.Report(Name, "factorize", k, candidates.Count);
                Add(candidates[k], null);
            }
        }
        else
        {
            // Stages: calibrate the partly factorized copy, factorize a few layers, apply them to the copy, repeat.
            // Later layers thus see the factorized earlier ones (and, with CompensateUpstream, are fitted to the
            // original's outputs, run side by side); the stage size trades calibration runs (an ORT session and a pass
            // over the data each) against how current the statistics are.
            var work = graph.Clone();
            for (int start = 0; start < candidates.Count; start += Options.LayersPerStage)
            {
                var stage = candidates.Skip(start).Take(Options.LayersPerStage).ToList();
                context.Report(Name, "calibrate", start, candidates.Count);
                foreach (var c in stage.Where(c => !SupportsDataAware(c)))
                    context.Log?.Invoke($"{c.Weight}: the {Options.Conv.ToString().ToLowerInvariant()} form is fitted to the weight, not to calibration data (data-aware needs the channel or tucker form).");
                var requests = stage.Where(c => SupportsDataAware(c)).SelectMany(Requests).Distinct().ToList();
                var stats = CalibrationCollector.CollectCrossCovariances(Options.CompensateUpstream ? graph : work, work, requests, Options.Calibration, Options.CalibrationSettings, context.Cancellation);
                foreach (var c in stage)
                {
                    context.Cancellation.ThrowIfCancellationRequested();
                    var layer = Add(c, stats);
                    if (layer is not null) Apply(work, layer);
                }
            }
        }
        context.Report(Name, "factorize", candidates.Count, candidates.Count);
        return layers;

        LowRankLayer? Add(Candidate c, IReadOnlyDictionary<string, RunningCrossCovariance>? stats)
        {
            var layer = Factorize(c, stats, optionsFor(c), out string? reason);
            if (layer is null) skipped.Add($"{c.Weight} ({c.Node.OpType} '{GraphScope.NodeLabel(c.Node)}'): {reason}");
            else layers.Add(layer);
            return layer;
        }
    }

    private bool SupportsDataAware(Candidate c) =>
        c.Node.OpType != "Conv" || Options.Conv is ConvFactorization.Channel or ConvFactorization.Tucker;

    /// <summary>The statistics a data-aware split of <paramref name="c"/> reads: its output's, and for Tucker-2 also its input channels'.</summary>
    private IEnumerable<CovarianceRequest> Requests(Candidate c)
    {
        yield return new CovarianceRequest(c.Output, c.Node.OpType == "Conv" ? 1 : -1);
        if (c.Node.OpType == "Conv" && Options.Conv == ConvFactorization.Tucker) yield return new CovarianceRequest(c.Node.Input[0], 1);
    }

    private List<Candidate> Discover(ModelGraph graph, List<string> skipped)
    {
        var found = new List<Candidate>();
        foreach (var scope in graph.Scopes.Skip(1))
            foreach (var node in scope.Nodes)
                if (IsOnnx(node) && Options.Ops.Contains(node.OpType))
                    skipped.Add($"{GraphScope.NodeLabel(node)} ({node.OpType} in {scope.Path}): inside a subgraph; only main-graph layers are split.");
        var main = graph.Main;
        foreach (var node in main.Nodes)
        {
            if (!IsOnnx(node) || !Options.Ops.Contains(node.OpType) || node.Input.Count < 2) continue;
            string weight = node.Input[1];
            string label = $"{weight} ({node.OpType} '{GraphScope.NodeLabel(node)}')";
            var tensor = main.ConstantValue(weight);
            if (tensor is null)
            {
                if (node.OpType == "MatMul" && main.ConstantValue(node.Input[0]) is not null)
                    skipped.Add($"{label}: the constant is the left operand; only x·W is split.");
                continue; // activations times activations: nothing to factorize
            }
            if (Options.Weights is { } only && !only.Contains(weight)) continue;
            string? reason = Check(graph, main, node, weight, tensor);
            if (reason is not null)
            {
                skipped.Add($"{label}: {reason}");
                continue;
            }
            var (bias, canAdd) = BiasOf(main, node);
            var values = TensorData.ToFloatArray(tensor);
            var norm = Options.FoldBatchNorm && node.OpType == "Conv" ? FoldableNorm(main, node) : null;
            if (norm is not null)
            {
                bias = FoldNorm(main, norm, values, bias);
                canAdd = true;
            }
            found.Add(new Candidate(node, weight, tensor.Dims.ToArray(), values, bias, canAdd, norm?.Output[0] ?? node.Output[0], norm));
        }
        return found;
    }

    private string? Check(ModelGraph graph, GraphScope main, NodeProto node, string weight, TensorProto tensor)
    {
        if (OnnxDataTypes.FromWire(tensor.DataType) != OnnxDataType.Float)
            return $"stored as {OnnxDataTypes.Name(OnnxDataTypes.FromWire(tensor.DataType))}; only float32 weights are split.";
        var dims = tensor.Dims.ToArray();
        long count = TensorData.ElementCount(dims, weight);
        if (count < Options.MinElements) return $"{count} elements, below MinElements {Options.MinElements}.";
        if (main.Consumers(weight).Count != 1) return $"read by {main.Consumers(weight).Count} nodes; a shared weight is left whole.";
        if (main.IsGraphOutput(weight)) return "it is also a graph output.";
        if (graph.IrVersion >= 4 && main.Initializer(weight) is not null && main.Proto.Input.Any(i => i.Name == weight))
            return "it is also a graph input, so callers may override it.";
        switch (node.OpType)
        {
            case "MatMul" when dims.Length != 2:
                return $"a rank-{dims.Length} MatMul weight; only 2-D weights are split.";
            case "Gemm" when dims.Length != 2:
                return $"a rank-{dims.Length} Gemm weight.";
            case "Conv":
                long group = Int(node, "group", 1);
                if (group != 1)
                    return group == dims[0] ? $"depthwise conv (group={group}); nothing to split across channels." : $"grouped conv (group={group}); only group=1 convs are split.";
                if (dims.Length < 3) return "a conv weight needs at least one spatial axis.";
                if (Options.Conv != ConvFactorization.Channel && dims.Length != 4)
                    return $"{Options.Conv.ToString().ToLowerInvariant()} split needs a 2-D conv (weight rank 4), this one has rank {dims.Length}.";
                break;
        }
        return null;
    }

    /// <summary>
    /// The BatchNormalization (inference form, constant parameters) that alone reads the conv's output, or null. Its
    /// per-channel scale decides how much each output channel's error matters, so it is folded in before splitting.
    /// </summary>
    private static NodeProto? FoldableNorm(GraphScope main, NodeProto conv)
    {
        string y = conv.Output[0];
        if (main.IsGraphOutput(y) || main.Consumers(y) is not [{ OpType: "BatchNormalization" } bn]) return null;
        if (!IsOnnx(bn) || bn.Input.Count != 5 || bn.Input[0] != y || bn.Output.Count != 1 || Int(bn, "spatial", 1) != 1) return null;
        if (Int(bn, "training_mode", 0) != 0) return null;
        for (int i = 1; i < 5; i++)
            if (main.ConstantValue(bn.Input[i]) is null) return null;
        return bn;
    }

    /// <summary>Scales <paramref name="weight"/> in place by γ/√(var+ε) per output channel and returns the folded bias.</summary>
    private static double[] FoldNorm(GraphScope main, NodeProto bn, float[] weight, double[]? bias)
    {
        var gamma = TensorData.ToFloatArray(main.ConstantValue(bn.Input[1])!);
        var beta = TensorData.ToFloatArray(main.ConstantValue(bn.Input[2])!);
        var mean = TensorData.ToFloatArray(main.ConstantValue(bn.Input[3])!);
        var variance = TensorData.ToFloatArray(main.ConstantValue(bn.Input[4])!);
        double eps = Float(bn, "epsilon", 1e-5f);
        int channels = gamma.Length, per = weight.Length / channels;
        var folded = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            double scale = gamma[c] / Math.Sqrt(variance[c] + eps);
            var row = weight.AsSpan(c * per, per);
            for (int i = 0; i < row.Length; i++) row[i] = (float)(row[i] * scale);
            folded[c] = scale * ((bias?[c] ?? 0) - mean[c]) + beta[c];
        }
        return folded;
    }

    /// <summary>The layer's bias as a vector (Gemm: beta·C), and whether a bias may be added where there is none.</summary>
    private static (double[]? Bias, bool CanAdd) BiasOf(GraphScope main, NodeProto node)
    {
        int outDim;
        string? biasName = node.Input.Count > 2 && node.Input[2].Length > 0 ? node.Input[2] : null;
        var dims = main.ConstantValue(node.Input[1])!.Dims;
        switch (node.OpType)
        {
            case "Conv": outDim = (int)dims[0]; break;
            case "Gemm": outDim = (int)(Int(node, "transB", 0) != 0 ? dims[0] : dims[1]); break;
            default: return (null, false); // MatMul: no bias input; the graph's following Add stays as it is
        }
        if (biasName is null) return (null, true);
        var t = main.ConstantValue(biasName);
        if (t is null) return (null, false);
        var values = TensorData.ToFloatArray(t);
        double scale = node.OpType == "Gemm" ? Float(node, "beta", 1) : 1;
        if (values.Length == outDim) return (values.Select(v => scale * v).ToArray(), true);
        if (values.Length == 1) return (Enumerable.Repeat(scale * values[0], outDim).ToArray(), true);
        return (null, false);
    }

    private LowRankLayer? Factorize(Candidate c, IReadOnlyDictionary<string, RunningCrossCovariance>? allStats, LowRankOptions options, out string? reason)
    {
        var stats = allStats?.GetValueOrDefault(c.Output);
        var node = c.Node;
        var dims = c.Dims;
        var w = Svd.ToDouble(c.Values);
        reason = null;
        string label = GraphScope.NodeLabel(node);
        if (node.OpType is "MatMul" or "Gemm")
        {
            bool transB = node.OpType == "Gemm" && Int(node, "transB", 0) != 0;
            int k = (int)(transB ? dims[1] : dims[0]), n = (int)(transB ? dims[0] : dims[1]);
            // W as out×in: N×K.
            var wOut = transB ? w : Transpose(w, k, n);
            var (l, r, rank, bias) = LayerFactorizer.SplitMatrix(wOut, n, k, options, stats, c.Bias, c.CanAddBias);
            var (rel, max) = LayerFactorizer.Error(wOut, LayerFactorizer.Multiply(l, r, n, rank, k));
            long after = (long)rank * (n + k);
            var f = new Factorization(
                [new Factor(LayerFactorizer.ToFloat(Transpose(r, rank, k)), [k, rank]), new Factor(LayerFactorizer.ToFloat(Transpose(l, n, rank)), [rank, n])],
                [rank], after, after, rel, max, stats is not null && bias is not null ? LayerFactorizer.ToFloat(bias) : null);
            return Keep(new LowRankLayer(label, c.Output, node.OpType, c.Weight, dims, "matrix", [rank], (long)n * k, (long)n * k, f, stats is not null), out reason);
        }

        int cout = (int)dims[0], cin = (int)dims[1];
        int ksize = 1;
        for (int i = 2; i < dims.Length; i++) ksize *= (int)dims[i];
        long before = (long)cout * cin * ksize;
        var ones = Enumerable.Repeat(1L, dims.Length - 2).ToArray();
        switch (options.Conv)
        {
            case ConvFactorization.Channel:
            {
                int inDim = cin * ksize;
                var (l, r, rank, bias) = LayerFactorizer.SplitMatrix(w, cout, inDim, options, stats, c.Bias, c.CanAddBias);
                var (rel, max) = LayerFactorizer.Error(w, LayerFactorizer.Multiply(l, r, cout, rank, inDim));
                long after = (long)rank * (inDim + cout);
                var f = new Factorization(
                    [new Factor(LayerFactorizer.ToFloat(r), [rank, cin, .. dims[2..]]), new Factor(LayerFactorizer.ToFloat(l), [cout, rank, .. ones])],
                    [rank], after, after, rel, max, (stats is not null || c.Norm is not null) && bias is not null ? LayerFactorizer.ToFloat(bias) : null);
                return Keep(new LowRankLayer(label, c.Output, "Conv", c.Weight, dims, "channel", [rank], before, before, f, stats is not null), out reason);
            }
            case ConvFactorization.Spatial:
            {
                int kh = (int)dims[2], kw = (int)dims[3];
                if (kh == 1 || kw == 1)
                {
                    reason = $"a {kh}×{kw} kernel is already one-dimensional; nothing to split spatially.";
                    return null;
                }
                // M[(c, y), (o, x)] = W[o, c, y, x]: vertical filters on the left, horizontal on the right.
                int rows = cin * kh, cols = cout * kw;
                var m = new double[rows * cols];
                for (int o = 0; o < cout; o++)
                    for (int ci = 0; ci < cin; ci++)
                        for (int y = 0; y < kh; y++)
                            for (int x = 0; x < kw; x++)
                                m[(ci * kh + y) * cols + o * kw + x] = w[((o * cin + ci) * kh + y) * kw + x];
                var (l, r, rank, _) = LayerFactorizer.SplitMatrix(m, rows, cols, options, null, null, false);
                var (rel, max) = LayerFactorizer.Error(m, LayerFactorizer.Multiply(l, r, rows, rank, cols));
                var v = new float[rank * cin * kh];
                for (int ci = 0; ci < cin; ci++)
                    for (int y = 0; y < kh; y++)
                        for (int k = 0; k < rank; k++) v[(k * cin + ci) * kh + y] = (float)l[(ci * kh + y) * rank + k];
                var h = new float[cout * rank * kw];
                for (int k = 0; k < rank; k++)
                    for (int o = 0; o < cout; o++)
                        for (int x = 0; x < kw; x++) h[(o * rank + k) * kw + x] = (float)r[k * cols + o * kw + x];
                long after = (long)rank * (cin * kh + cout * kw);
                var f = new Factorization([new Factor(v, [rank, cin, kh, 1]), new Factor(h, [cout, rank, 1, kw])], [rank], after, after, rel, max, FoldedBias(c));
                return Keep(new LowRankLayer(label, c.Output, "Conv", c.Weight, dims, "spatial", [rank], before, before, f, false), out reason);
            }
            default:
            {
                int kh = (int)dims[2], kw = (int)dims[3], k2 = kh * kw;
                var inputStats = allStats?.GetValueOrDefault(c.Node.Input[0]);
                bool aware = stats is not null && inputStats is not null;
                double[] uIn, core, uOut;
                int r1, r2;
                double[]? awareBias = null;
                if (aware) (uIn, core, uOut, r1, r2, awareBias) = LayerFactorizer.TuckerDataAware(w, cout, cin, kh, kw, options, inputStats!, stats!, c.Bias);
                else (uIn, core, uOut, r1, r2) = LayerFactorizer.Tucker(w, cout, cin, kh, kw, options);
                // Ŵ[o, c, s] = Σ_i (Σ_j U_out[o, j]·core[j, i, s])·U_in[c, i].
                var a = LayerFactorizer.Multiply(uOut, core, cout, r2, r1 * k2);
                var approx = new double[w.Length];
                for (int o = 0; o < cout; o++)
                    for (int i = 0; i < r1; i++)
                    {
                        var ai = a.AsSpan((o * r1 + i) * k2, k2);
                        for (int ci = 0; ci < cin; ci++)
                            DenseKernels.AddScaled(approx.AsSpan((o * cin + ci) * k2, k2), ai, uIn[ci * r1 + i]);
                    }
                var (rel, max) = LayerFactorizer.Error(w, approx);
                long after = (long)r1 * cin + (long)r1 * r2 * k2 + (long)r2 * cout;
                var f = new Factorization(
                    [new Factor(LayerFactorizer.ToFloat(Transpose(uIn, cin, r1)), [r1, cin, 1, 1]), new Factor(LayerFactorizer.ToFloat(core), [r2, r1, kh, kw]),
                     new Factor(LayerFactorizer.ToFloat(uOut), [cout, r2, 1, 1])],
                    [r1, r2], after, after, rel, max, aware ? LayerFactorizer.ToFloat(awareBias!) : FoldedBias(c));
                return Keep(new LowRankLayer(label, c.Output, "Conv", c.Weight, dims, "tucker", [r1, r2], before, before, f, aware), out reason);
            }
        }
    }

    private static float[]? FoldedBias(Candidate c) => c.Norm is not null && c.Bias is not null ? LayerFactorizer.ToFloat(c.Bias) : null;

    private LowRankLayer? Keep(LowRankLayer layer, out string? reason)
    {
        if (Options.RequireFewerParameters && layer.ParamsAfter >= layer.ParamsBefore)
        {
            reason = string.Create(CultureInfo.InvariantCulture,
                $"rank {string.Join("/", layer.Ranks)} would need {layer.ParamsAfter} parameters, not fewer than the {layer.ParamsBefore} of the weight.");
            return null;
        }
        reason = null;
        return layer;
    }

    // ---- rewrite ----------------------------------------------------------------------------

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, LowRankPlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(context);
        LastPlan = plan;
        if (plan.Layers.Count == 0) return PassResult.Unchanged(Name, plan.Skipped);
        var changes = new List<string>();
        for (int k = 0; k < plan.Layers.Count; k++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "rewrite", k, plan.Layers.Count);
            Apply(graph, plan.Layers[k]);
            changes.Add(plan.Layers[k].ToString());
        }
        context.Report(Name, "rewrite", plan.Layers.Count, plan.Layers.Count);
        changes.Add(string.Create(CultureInfo.InvariantCulture,
            $"{plan.Layers.Count} layers split: {plan.ParamsBefore} -> {plan.ParamsAfter} weight parameters."));
        return new PassResult(Name, true, changes, plan.Skipped);
    }

    /// <summary>Replaces the layer's node by its factor nodes (the last one produces the node's output) and drops the old weight.</summary>
    internal static void Apply(ModelGraph graph, LowRankLayer layer)
    {
        var main = graph.Main;
        var node = main.Producer(layer.Output) ?? throw new InvalidOperationException($"no node produces '{layer.Output}'.");
        NodeProto? norm = null;
        if (node.OpType == "BatchNormalization")
        {
            // The norm was folded into the factors: both nodes go, the last factor node produces the norm's output.
            norm = node;
            node = main.Producer(norm.Input[0]) ?? throw new InvalidOperationException($"no node produces '{norm.Input[0]}'.");
        }
        var f = layer.Factorization;
        var names = f.Factors.Select((x, i) => graph.UniqueName($"{layer.Weight}_lr{i}")).ToArray();
        for (int i = 0; i < f.Factors.Count; i++)
            main.AddInitializer(TensorData.FromFloats(names[i], f.Factors[i].Dims, f.Factors[i].Values));
        string? bias = node.Input.Count > 2 && node.Input[2].Length > 0 ? node.Input[2] : null;
        if (f.Bias is not null)
        {
            bias = graph.UniqueName($"{layer.Weight}_lr_bias");
            main.AddInitializer(TensorData.FromFloats(bias, [f.Bias.Length], f.Bias));
        }
        string prefix = node.Name.Length > 0 ? node.Name : layer.Output;
        string Mid(int i) => graph.UniqueName($"{layer.Output}_lr{i}");
        var nodes = new List<NodeProto>();
        switch (layer.OpType)
        {
            case "MatMul":
            {
                string t = Mid(0);
                nodes.Add(GraphEdits.Node(graph, "MatMul", prefix + "_lr0", [node.Input[0], names[0]], [t]));
                nodes.Add(GraphEdits.Node(graph, "MatMul", prefix + "_lr1", [t, names[1]], [layer.Output]));
                break;
            }
            case "Gemm":
            {
                string t = Mid(0);
                var first = new List<string> { node.Input[0], names[0] };
                if (graph.OnnxOpset < 11)
                {
                    // C is required before opset 11: a zero vector (broadcast over rows).
                    string zero = graph.UniqueName($"{layer.Weight}_lr_zero");
                    main.AddInitializer(TensorData.FromFloats(zero, [layer.Ranks[0]], new float[layer.Ranks[0]]));
                    first.Add(zero);
                }
                nodes.Add(GraphEdits.Node(graph, "Gemm", prefix + "_lr0", [.. first], [t],
                    FloatAttr("alpha", Float(node, "alpha", 1)), IntAttr("transA", Int(node, "transA", 0))));
                var second = new List<string> { t, names[1] };
                if (bias is not null) second.Add(bias);
                // The data-aware bias already holds beta·C.
                float beta = f.Bias is not null ? 1 : Float(node, "beta", 1);
                nodes.Add(GraphEdits.Node(graph, "Gemm", prefix + "_lr1", [.. second], [layer.Output], FloatAttr("beta", beta)));
                break;
            }
            default:
            {
                var inputs = new List<string> { node.Input[0] };
                int spatial = layer.ShapeArray.Length - 2;
                var unit = Enumerable.Repeat(1L, spatial).ToArray();
                var last = new List<string>();
                if (bias is not null) last.Add(bias);
                switch (layer.Form)
                {
                    case "channel":
                    {
                        string t = Mid(0);
                        nodes.Add(GraphEdits.Node(graph, "Conv", prefix + "_lr0", [node.Input[0], names[0]], [t], ConvAttrs(node, layer.ShapeArray[2..])));
                        nodes.Add(GraphEdits.Node(graph, "Conv", prefix + "_lr1", [t, names[1], .. last], [layer.Output], IntsAttr("kernel_shape", unit)));
                        break;
                    }
                    case "spatial":
                    {
                        string t = Mid(0);
                        long kh = layer.ShapeArray[2], kw = layer.ShapeArray[3];
                        var s = Ints(node, "strides") ?? [1, 1];
                        var d = Ints(node, "dilations") ?? [1, 1];
                        var p = Ints(node, "pads") ?? [0, 0, 0, 0];
                        string autoPad = Str(node, "auto_pad") ?? "NOTSET";
                        // Vertical extent, stride, dilation and pads on the K×1 conv; horizontal ones on the 1×K conv.
                        // With auto_pad SAME the K×1 conv keeps the width (1 wide, stride 1) so each SAME pads its own axis.
                        nodes.Add(GraphEdits.Node(graph, "Conv", prefix + "_lr0", [node.Input[0], names[0]], [t],
                            SpatialAttrs([kh, 1], [s[0], 1], [d[0], 1], [p[0], 0, p[2], 0], autoPad)));
                        nodes.Add(GraphEdits.Node(graph, "Conv", prefix + "_lr1", [t, names[1], .. last], [layer.Output],
                            SpatialAttrs([1, kw], [1, s[1]], [1, d[1]], [0, p[1], 0, p[3]], autoPad)));
                        break;
                    }
                    default:
                    {
                        string t0 = Mid(0), t1 = Mid(1);
                        nodes.Add(GraphEdits.Node(graph, "Conv", prefix + "_lr0", [node.Input[0], names[0]], [t0], IntsAttr("kernel_shape", unit)));
                        nodes.Add(GraphEdits.Node(graph, "Conv", prefix + "_lr1", [t0, names[1]], [t1], ConvAttrs(node, layer.ShapeArray[2..])));
                        nodes.Add(GraphEdits.Node(graph, "Conv", prefix + "_lr2", [t1, names[2], .. last], [layer.Output], IntsAttr("kernel_shape", unit)));
                        break;
                    }
                }
                break;
            }
        }
        int at = IndexOfSame(main.Nodes, node);
        var oldInputs = node.Input.Skip(1).Concat(norm?.Input.Skip(1) ?? []).ToArray();
        main.RemoveNode(node);
        if (norm is not null) main.RemoveNode(norm);
        for (int i = 0; i < nodes.Count; i++) main.AddNode(nodes[i], at + i);
        // Drop the weight (and a replaced bias) once nothing reads them.
        foreach (var input in oldInputs)
            if (input.Length > 0 && main.Consumers(input).Count == 0 && !main.IsGraphOutput(input))
            {
                if (main.Initializer(input) is not null) main.RemoveInitializer(input);
                else if (main.Producer(input) is { OpType: "Constant" } constant) main.RemoveNode(constant);
            }
    }

    private static int IndexOfSame(IReadOnlyList<NodeProto> nodes, NodeProto node)
    {
        for (int i = 0; i < nodes.Count; i++)
            if (ReferenceEquals(nodes[i], node)) return i;
        throw new InvalidOperationException($"node '{GraphScope.NodeLabel(node)}' is not in the graph.");
    }

    /// <summary>The original conv's attributes with group 1 and an explicit kernel_shape.</summary>
    private static AttributeProto[] ConvAttrs(NodeProto node, long[] kernel)
    {
        var attrs = node.Attribute.Where(a => a.Name is not ("kernel_shape" or "group")).Select(a => a.Clone()).ToList();
        attrs.Add(IntsAttr("kernel_shape", kernel));
        return [.. attrs];
    }

    private static AttributeProto[] SpatialAttrs(long[] kernel, long[] strides, long[] dilations, long[] pads, string autoPad)
    {
        var attrs = new List<AttributeProto> { IntsAttr("kernel_shape", kernel), IntsAttr("strides", strides), IntsAttr("dilations", dilations) };
        if (autoPad is "NOTSET" or "") attrs.Add(IntsAttr("pads", pads));
        else attrs.Add(new AttributeProto { Name = "auto_pad", Type = AttributeProto.Types.AttributeType.String, S = Google.Protobuf.ByteString.CopyFromUtf8(autoPad) });
        return [.. attrs];
    }


    private static AttributeProto IntAttr(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    private static AttributeProto FloatAttr(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    private static AttributeProto IntsAttr(string name, long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    private static long Int(NodeProto node, string name, long fallback) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.I : fallback;

    private static float Float(NodeProto node, string name, float fallback) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.F : fallback;

    private static long[]? Ints(NodeProto node, string name) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.Ints.ToArray() : null;

    private static string? Str(NodeProto node, string name) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.S.ToStringUtf8() : null;

    private static double[] Transpose(double[] a, int rows, int cols) => DenseKernels.Transpose(a, rows, cols);

    private static bool IsOnnx(NodeProto n) => n.Domain is "" or "ai.onnx";
}
