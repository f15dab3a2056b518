using MLNetCompress.Calibration;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.Budget;
using MLNetCompress.Quantization.KernelSafety;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>
/// Static QDQ quantization, the speed path: weights of Conv, ConvTranspose, Gemm and MatMul are folded to int8
/// offline (int8 initializer + scale + zero point → DequantizeLinear), biases to int32 with scale s_x·s_w, and the
/// activations around the quantized nodes get QuantizeLinear→DequantizeLinear pairs with scales from calibration on
/// the float model. ONNX Runtime then fuses DQ→Conv→Q into QLinearConv, Gemm into QGemm, MatMul into QLinearMatMul.
/// (Weight-only DequantizeLinear in front of a Conv would run on every inference and be slower than float.)
/// </summary>
/// <remarks>
/// Runs on the main graph. Needs ai.onnx opset 10 (13 with per-channel scales); run
/// <see cref="Preparation.OpsetUpgradePass"/> first for older models. Already quantized models are left alone.
/// Each op kind's rule is a <see cref="QdqOpHandler"/> in <see cref="QdqHandlerRegistry"/>.
/// A clustered weight (<see cref="Clustering.KMeansClusteringPass"/>: an index tensor gathered from a float codebook)
/// keeps its index tensor: only its codebook becomes int8 (k entries, or k per channel with per-channel scales), gathered
/// and then dequantized (<see cref="ClusteredWeight"/>). ONNX Runtime folds the Gather at load and fuses as for a plain weight.
/// </remarks>
public sealed class QdqQuantizationPass : LayerReportingPass<QdqPlan>
{
    /// <summary>The lowest opset with QuantizeLinear/DequantizeLinear.</summary>
    public const long MinOpset = 10;

    /// <summary>The lowest opset with per-axis QuantizeLinear/DequantizeLinear.</summary>
    public const long MinPerChannelOpset = 13;

    /// <summary>Models whose tensors exceed this many bytes are not speed-checked (<see cref="QdqOptions.KeepFloatWhereSlower"/>).</summary>
    public const long MaxSpeedCheckBytes = 1L << 30;

    /// <summary>The zero point of weights stored as uint8 (<see cref="PairSumGuard.Uint8Weights"/>).</summary>
    public const int UInt8WeightZeroPoint = 128;

    /// <summary>Creates the pass.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public QdqQuantizationPass(QdqOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
    }

    /// <summary>The options.</summary>
    public QdqOptions Options { get; }

    /// <summary>The plan of the last run, for reports (after a gate recovery re-ran the pass, the re-run's plan).</summary>
    public QdqPlan? LastPlan
    {
        get => _lastPlan;
        private set
        {
            _lastPlan = value;
            if (_reportsTo is not null) _reportsTo.LastPlan = value;
        }
    }

    private QdqPlan? _lastPlan;
    private QdqQuantizationPass? _reportsTo;

    /// <summary>This pass with other options (a gate recovery's remedies), whose plan also becomes this one's <see cref="LastPlan"/>.</summary>
    internal QdqQuantizationPass RerunWith(QdqOptions options) => new(options) { _reportsTo = this };

    /// <inheritdoc />
    public override string Name => "qdq-quantization";

    /// <summary>The opset the options need: 13 with per-channel weights, else 10.</summary>
    public long RequiredOpset => Options.PerChannel ? MinPerChannelOpset : MinOpset;

    /// <inheritdoc />
    protected override IEnumerable<LayerChange> LayerChanges(QdqPlan plan) => plan.Weights.Select(w =>
        plan.SpeedOf(w.Name) is { } speed ? w.ToLayerChange() with { FloatMs = speed.FloatMs, CompressedMs = speed.Int8InPlaceMs } : w.ToLayerChange());

    // ---- plan -------------------------------------------------------------------------------

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">The model's opset is too old for the options.</exception>
    protected override QdqPlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(context);
        if (QuantizedModelDetector.Describe(graph) is { } already)
        {
            context.Log?.Invoke(already);
            return LastPlan = new QdqPlan(already, [], new Dictionary<NodeProto, QdqNodeRule>(ReferenceEqualityComparer.Instance), [], [], [], [already]);
        }
        if (graph.OnnxOpset < RequiredOpset)
            throw new InvalidOperationException(
                $"static QDQ quantization{(Options.PerChannel ? " with per-channel weights" : "")} needs ai.onnx opset {RequiredOpset}; " +
                $"the model has opset {graph.OnnxOpset}. Run the opset upgrade first (OpsetUpgradePass / mlnet-compress upgrade --opset {RequiredOpset}).");

        var scope = graph.Main;
        var skipped = new List<string>();
        if (SubgraphLayers(graph) is { } nested) skipped.Add(nested);
        var rules = SelectNodes(scope, skipped);
        var values = ActivationValues(scope, rules);
        // Each layer left float can leave the one before it without a quantized reader: repeat until nothing changes.
        while (!Options.KeepUnfusedLayers && DropLayersWithFloatOutputs(scope, rules, values, skipped)) values = ActivationValues(scope, rules);
        if (rules.Count == 0)
            return LastPlan = new QdqPlan(null, [], rules, [], [], [], skipped);

        bool checkSpeed = Options.KeepFloatWhereSlower && !Options.KeepUnfusedLayers;
        // The whole-model check holds several copies of the model in ONNX Runtime at once: not for very large models.
        if (checkSpeed && ExternalData.InlineSize(graph.Model) > MaxSpeedCheckBytes)
        {
            checkSpeed = false;
            skipped.Add($"speed check skipped: the model is larger than {MaxSpeedCheckBytes / (1 << 20)} MiB and timing several copies of it " +
                        "would need several times its size in memory; every layer is kept int8.");
        }
        IReadOnlyList<LayerSpeed>? timed = null;
        string? speedSummary = null;
        var stats = Options.CalibrationStatistics;
        if (stats is null)
        {
            context.Report(Name, "calibrate", 0, 1);
            // The speed check may keep layers float and plan again: calibrate every value a plan could quantize, once.
            var watched = checkSpeed ? values.Concat(AccuracyBudgetSearch.CandidateValues(graph, Options)).Distinct(StringComparer.Ordinal).ToList() : values.ToList();
            stats = ActivationRanges.Collect(graph, watched, Options.Calibration, Options.CalibrationSettings,
                Options.HistogramBins, context.Cancellation);
            context.Report(Name, "calibrate", 1, 1);
        }
        var activations = ChooseRanges(scope, rules, values, stats, skipped, reduced: null);

        // A compute node whose activation input got no float statistics (an integer input) stays float.
        foreach (var (node, rule) in rules.ToList())
            if (rule.IsCompute && rule.Activations.Any(i => !activations.ContainsKey(node.Input[i])))
            {
                rules.Remove(node);
                skipped.Add($"{GraphScope.NodeLabel(node)}: an input has no float calibration statistics; left in float.");
            }

        // Weights first: the pair-sum guard may ask for 7-bit input activations, which the bias scales depend on.
        // Clustered weights are quantized through their codebook; their values are read once, one session for all.
        var clustered = ClusteredWeights(scope, rules);
        var clusteredValues = ClusteredWeight.ReadValues(graph, clustered.Values.ToList(), skipped);
        var weights = new Dictionary<string, QdqWeight>(StringComparer.Ordinal);
        // A copy: a node whose weight cannot be quantized leaves the table inside the loop.
        foreach (var (node, rule) in rules.ToList())
        {
            context.Cancellation.ThrowIfCancellationRequested();
            if (rule.Weight is not { } w) continue;
            string name = node.Input[w.Index];
            if (weights.ContainsKey(name)) continue;
            string? problem = null;
            var guard = Options.Uint8WeightNodes.Contains(node.Name) || Options.Uint8WeightNodes.Contains(GraphScope.NodeLabel(node))
                ? PairSumGuard.Uint8Weights : Options.Guard;
            var weight = clustered.TryGetValue(name, out var c)
                ? QuantizeClustered(c, clusteredValues.GetValueOrDefault(c), node.OpType, w.Axis, guard, out problem)
                : QuantizeWeight(scope, name, node.OpType, w.Axis, guard, Options.PerChannel);
            if (weight is null)
            {
                skipped.Add($"{name} ({node.OpType} '{GraphScope.NodeLabel(node)}'): {problem ?? "NaN or infinite values"}; left in float.");
                rules.Remove(node);
                continue;
            }
            weights[name] = weight;
        }
        if (Options.Guard == PairSumGuard.ReducedRangeActivations)
        {
            var reduced = ReducedRangeValues(scope, rules, weights);
            if (reduced.Count > 0) activations = ChooseRanges(scope, rules, values, stats, skipped, reduced);
        }
        if (checkSpeed && rules.Values.Any(r => r.IsCompute))
        {
            var (speeds, tryFloat) = LayerSpeedCheck.Measure(scope, graph.Model, rules, activations, weights, stats, Options, skipped,
                (done, total) => context.Report(Name, "time layers", done, total), context.Cancellation);
            var batch = Options.Calibration.Batches(Options.CalibrationSettings.BatchSize, Options.CalibrationSettings.BatchSize).FirstOrDefault();
            if (batch is not null)
            {
                context.Report(Name, "time whole models", 0, 1);
                var (keepFloat, summary) = LayerSpeedCheck.ChooseByWholeModel(graph.ToBytes(), tryFloat, set => Candidate(graph, stats, set, context),
                    batch, Options.CalibrationSettings.Runtime, Options.SpeedSamples, context.Cancellation);
                context.Report(Name, "time whole models", 1, 1);
                speeds = speeds.Select(s => s with { KeptFloat = keepFloat.Contains(s.Layer) }).ToList();
                foreach (var s in speeds) context.Log?.Invoke(s.ToString());
                context.Log?.Invoke(summary);
                if (keepFloat.Count > 0)
                {
                    // Plan again without them, from the same statistics: their neighbours' Q/DQ pairs move accordingly.
                    return LastPlan = Without(keepFloat, stats).Plan(graph, context).WithSpeeds(speeds, summary);
                }
                timed = speeds;
                speedSummary = summary;
            }
        }
        var biases = new List<QdqBias>();
        foreach (var (node, rule) in rules)
        {
            if (rule.Weight is not { } w || rule.Bias is not int b || !weights.TryGetValue(node.Input[w.Index], out var weight)) continue;
            var bias = QuantizeBias(scope, node, b, activations[node.Input[rule.Activations[0]]].Scale, weight, skipped);
            if (bias is not null) biases.Add(bias);
        }

        var ordered = scope.Nodes.Where(rules.ContainsKey).ToList();
        var used = new HashSet<string>(ordered.SelectMany(n => rules[n].Activations.Select(i => n.Input[i]))
            .Concat(ordered.Where(n => rules[n].QuantizeOutput).Select(n => n.Output[0])), StringComparer.Ordinal);
        var acts = activations.Values.Where(a => used.Contains(a.Value)).ToList();
        var plan = new QdqPlan(null, ordered, rules, acts, weights.Values.ToList(), biases, skipped);
        return LastPlan = timed is null ? plan : plan.WithSpeeds(timed, speedSummary!);
    }

    /// <summary>The same pass keeping <paramref name="keepFloat"/> float, from the same statistics, without a speed check.</summary>
    private QdqQuantizationPass Without(IReadOnlySet<string> keepFloat, IReadOnlyDictionary<string, HistogramStatistics> stats) =>
        new(Options with
        {
            ExcludeNodes = Options.ExcludeNodes.Concat(keepFloat).ToHashSet(StringComparer.Ordinal),
            KeepFloatWhereSlower = false,
            CalibrationStatistics = stats,
        });

    /// <summary>The quantized model keeping <paramref name="keepFloat"/> float, built on a copy (for the whole-model speed check).</summary>
    private byte[] Candidate(ModelGraph graph, IReadOnlyDictionary<string, HistogramStatistics> stats, IReadOnlySet<string> keepFloat, PassContext context)
    {
        var copy = graph.Clone();
        PassManager.Run(copy, [Without(keepFloat, stats)], new PassContext { Cancellation = context.Cancellation });
        return copy.ToBytes();
    }

    /// <summary>
    /// One line naming the weighted layers inside If/Loop/Scan bodies, or null when there are none. Calibration can only
    /// expose main-graph values as outputs, so a body's activations have no ranges: its layers stay float, and the report
    /// says so rather than passing over them silently.
    /// </summary>
    private string? SubgraphLayers(ModelGraph graph)
    {
        var nested = graph.Scopes.Where(s => s.Parent is not null)
            .SelectMany(s => s.Nodes.Where(n => n.Domain is "" or "ai.onnx" && Options.Ops.Contains(n.OpType)
                                                && n.OpType is "Conv" or "ConvTranspose" or "Gemm" or "MatMul")
                .Select(n => $"{n.OpType} '{GraphScope.NodeLabel(n)}' in {s.Path}"))
            .ToList();
        if (nested.Count == 0) return null;
        const int shown = 5;
        return $"{nested.Count} layer{(nested.Count == 1 ? "" : "s")} inside If/Loop/Scan bodies left in float (static QDQ quantizes the main graph only): " +
               string.Join("; ", nested.Take(shown)) + (nested.Count > shown ? $"; and {nested.Count - shown} more" : "") + ".";
    }

    /// <summary>The nodes to quantize: those with a handler that accepts them, pass-through ops only where they touch
    /// another quantized node (an isolated Add in int8 only adds conversions).</summary>
    private Dictionary<NodeProto, QdqNodeRule> SelectNodes(GraphScope scope, List<string> skipped)
    {
        var rules = new Dictionary<NodeProto, QdqNodeRule>(ReferenceEqualityComparer.Instance);
        foreach (var node in scope.Nodes)
        {
            if (node.Domain is not ("" or "ai.onnx") || !Options.Ops.Contains(node.OpType)) continue;
            if (Options.ExcludeNodes.Contains(node.Name) || Options.ExcludeNodes.Contains(GraphScope.NodeLabel(node)))
            {
                skipped.Add($"{GraphScope.NodeLabel(node)}: excluded by name.");
                continue;
            }
            var handler = QdqHandlerRegistry.For(node.OpType)!;
            var rule = handler.Describe(node, scope, out string? reason);
            if (rule is null) skipped.Add($"{GraphScope.NodeLabel(node)} ({node.OpType}): {reason}; left in float.");
            else rules[node] = rule;
        }
        bool changed = true;
        while (changed)
        {
            changed = false;
            foreach (var (node, rule) in rules.ToList())
            {
                if (rule.IsCompute) continue;
                bool touches = rule.Activations.Any(i => scope.Producer(node.Input[i]) is { } p && rules.ContainsKey(p))
                               || scope.Consumers(node.Output[0]).Any(rules.ContainsKey);
                if (!touches)
                {
                    rules.Remove(node);
                    changed = true;
                }
            }
        }
        return rules;
    }

    /// <summary>
    /// The values that get a Q/DQ pair: the activation inputs and outputs of the quantized nodes, except graph outputs
    /// (their float value is the model's result) and the output of a node read only by a quantized Relu (the pair goes
    /// after the Relu, so ONNX Runtime folds the Relu into the QLinear op before it).
    /// </summary>
    private static HashSet<string> ActivationValues(GraphScope scope, Dictionary<NodeProto, QdqNodeRule> rules)
    {
        var values = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (node, rule) in rules)
        {
            foreach (int i in rule.Activations) values.Add(node.Input[i]);
            if (rule.QuantizeOutput) values.Add(node.Output[0]);
        }
        foreach (var (node, rule) in rules)
        {
            if (!rule.QuantizeOutput || node.OpType == "Relu") continue;
            string y = node.Output[0];
            var readers = scope.Consumers(y);
            if (readers.Count == 1 && readers[0].OpType == "Relu" && rules.ContainsKey(readers[0]) && !scope.IsGraphOutput(y))
                values.Remove(y);
        }
        values.RemoveWhere(scope.IsGraphOutput);
        return values;
    }

    /// <summary>
    /// A Conv, ConvTranspose, Gemm or MatMul left in float whose own output gets a QuantizeLinear: it reads float values,
    /// never a DequantizeLinear. ONNX Runtime (1.31, ORT_ENABLE_ALL) quantizes the float weight of a node that a
    /// DequantizeLinear feeds and a QuantizeLinear follows by itself, per tensor, so a layer excluded for its accuracy
    /// would be quantized anyway. (A float layer whose output stays float reads the dequantized value like any reader.)
    /// </summary>
    private static bool ReadsFloat(NodeProto node, IReadOnlyDictionary<NodeProto, QdqNodeRule> rules, IReadOnlySet<string> paired) =>
        !rules.ContainsKey(node) && node.Domain is "" or "ai.onnx" && node.OpType is "Conv" or "ConvTranspose" or "Gemm" or "MatMul"
        && node.Output.Count > 0 && paired.Contains(node.Output[0]);

    /// <summary>
    /// Leaves in float the layers whose output (or the output of the Relu after them) gets no QuantizeLinear that a
    /// quantized reader uses: a graph output, or a value read only by layers left in float that read float values (see
    /// <see cref="ReadsFloat"/>). ONNX Runtime fuses only DQ→Conv→Q, so such a Conv would run an unfused
    /// DequantizeLinear per inference, slower than float; a Gemm or MatMul whose own output stays float still fuses
    /// (QGemm / MatMulIntegerToFloat with a float output), but not across a Relu. Returns true when it removed any.
    /// </summary>
    private static bool DropLayersWithFloatOutputs(GraphScope scope, Dictionary<NodeProto, QdqNodeRule> rules, HashSet<string> values, List<string> skipped)
    {
        bool removed = false;
        foreach (var node in rules.Where(kv => kv.Value.IsCompute).Select(kv => kv.Key).ToList())
        {
            string y = node.Output[0];
            var readers = scope.Consumers(y);
            bool throughRelu = readers.Count == 1 && readers[0].OpType == "Relu" && rules.ContainsKey(readers[0]) && !scope.IsGraphOutput(y);
            string z = throughRelu ? readers[0].Output[0] : y;
            bool quantizedOutput = values.Contains(z) && scope.Consumers(z).Any(r => !ReadsFloat(r, rules, values));
            if (quantizedOutput || (!throughRelu && node.OpType is "Gemm" or "MatMul")) continue;
            rules.Remove(node);
            skipped.Add(scope.IsGraphOutput(z)
                ? $"{GraphScope.NodeLabel(node)} ({node.OpType}): its output stays float (a graph output), and ONNX Runtime fuses only " +
                  "DequantizeLinear→Conv→QuantizeLinear; left in float rather than slower."
                : $"{GraphScope.NodeLabel(node)} ({node.OpType}): only layers left in float read its output, so it would end without a " +
                  "QuantizeLinear and not fuse; left in float rather than slower.");
            removed = true;
        }
        return removed;
    }

    /// <summary>Scale and zero point per value; data-movement ops copy their input's parameters to their output.</summary>
    /// <param name="scope">The main graph.</param>
    /// <param name="rules">The nodes quantized.</param>
    /// <param name="values">The values that get a Q/DQ pair.</param>
    /// <param name="stats">Their calibration statistics.</param>
    /// <param name="skipped">Receives one line per value left float.</param>
    /// <param name="reduced">Values quantized to 7-bit codes (<see cref="PairSumGuard.ReducedRangeActivations"/>), or null.</param>
    private Dictionary<string, QdqActivation> ChooseRanges(GraphScope scope, Dictionary<NodeProto, QdqNodeRule> rules,
        HashSet<string> values, IReadOnlyDictionary<string, HistogramStatistics> stats, List<string> skipped, IReadOnlySet<string>? reduced)
    {
        var result = new Dictionary<string, QdqActivation>(StringComparer.Ordinal);
        foreach (var v in values)
        {
            if (!stats.TryGetValue(v, out var s) || s.Count == 0)
            {
                // Said once: the second call (7-bit activations) sees the same statistics.
                if (reduced is null) skipped.Add($"{v}: no float values seen in calibration; not quantized.");
                continue;
            }
            // A graph input's range is the data's own range (pixels, features): clipping it only destroys information
            // the first layer needs, so inputs always keep MinMax.
            var method = scope.IsGraphInput(v) ? Options.Range with { Method = RangeMethod.MinMax } : Options.Range;
            var range = ActivationRanges.Choose(s, method);
            var (scale, zp) = reduced is not null && reduced.Contains(v)
                ? AffineQuantization.Parameters(range, AffineQuantization.ReducedRangeLimits)
                : AffineQuantization.Parameters(range, Options.Activations);
            result[v] = new QdqActivation(v, range, scale, zp);
        }
        // Graph order, so a chain of Reshape/Transpose/MaxPool passes the first parameters all the way along.
        foreach (var node in scope.Nodes)
            if (rules.TryGetValue(node, out var rule) && rule.SharesInputRange
                && result.TryGetValue(node.Input[0], out var input) && result.ContainsKey(node.Output[0]))
                result[node.Output[0]] = input with { Value = node.Output[0] };
        return result;
    }

    /// <summary>
    /// The activation inputs of the layers whose weights could clip (<see cref="PairSumGuard.ReducedRangeActivations"/>),
    /// followed back through the data-movement ops that share their input's parameters (MaxPool, Reshape, ...), so the
    /// 7-bit parameters are the ones that reach the layer.
    /// </summary>
    private static HashSet<string> ReducedRangeValues(GraphScope scope, Dictionary<NodeProto, QdqNodeRule> rules, Dictionary<string, QdqWeight> weights)
    {
        var reduced = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>();
        foreach (var (node, rule) in rules)
            if (rule.Weight is { } w && weights.TryGetValue(node.Input[w.Index], out var weight) && weight.Safety.Treated)
                foreach (int i in rule.Activations) pending.Push(node.Input[i]);
        while (pending.TryPop(out var v))
        {
            if (!reduced.Add(v)) continue;
            if (scope.Producer(v) is { } p && rules.TryGetValue(p, out var pr) && pr.SharesInputRange) pending.Push(p.Input[0]);
        }
        return reduced;
    }

    /// <summary>The weights of the selected nodes that are clustered (index tensor + codebook), by name.</summary>
    private static Dictionary<string, ClusteredWeight> ClusteredWeights(GraphScope scope, Dictionary<NodeProto, QdqNodeRule> rules)
    {
        var found = new Dictionary<string, ClusteredWeight>(StringComparer.Ordinal);
        foreach (var (node, rule) in rules)
            if (rule.Weight is { } w && scope.Initializer(node.Input[w.Index]) is null && !found.ContainsKey(node.Input[w.Index])
                && ClusteredWeight.Find(scope, node.Input[w.Index]) is { } c)
                found[c.Name] = c;
        return found;
    }

    /// <summary>
    /// A clustered weight keeps its index tensor and gets an int8 codebook: one of k entries with a per-tensor scale, or
    /// with per-channel scales one of k entries per channel (read at c·k + index), so the scales are exactly those a
    /// plain weight of the same values would get.
    /// </summary>
    private QdqWeight? QuantizeClustered(ClusteredWeight clustered, float[]? values, string opType, int axis, PairSumGuard guard, out string? problem)
    {
        if (values is null)
        {
            problem = "its clustered values could not be evaluated";
            return null;
        }
        int? a = Options.PerChannel && clustered.Dims.Length >= 2 ? axis : null;
        // A codebook is gathered as int8: uint8 weights are not offered for it, pair-safe scales guard it instead.
        var codebook = clustered.Quantize(values, a, axis, guard == PairSumGuard.Uint8Weights ? PairSumGuard.PairSafeWeights : guard);
        problem = codebook is null ? "NaN or infinite values" : null;
        return codebook is null ? null : new QdqWeight(clustered, opType, codebook);
    }

    private static QdqWeight? QuantizeWeight(GraphScope scope, string name, string opType, int axis, PairSumGuard guard, bool perChannel)
    {
        var tensor = scope.Initializer(name)!;
        var dims = tensor.Dims.ToArray();
        var values = TensorData.ToFloatArray(tensor);
        int? a = perChannel && dims.Length >= 2 ? axis : null;
        var q = new sbyte[values.Length];
        var scales = new float[SymmetricInt8.ScaleCount(dims, a)];
        return GuardedInt8.TryQuantize(values, dims, a, axis, guard, q, scales, out float error, out var safety)
            ? new QdqWeight(name, opType, dims, a, q, scales, error, safety)
            : null;
    }

    private static QdqBias? QuantizeBias(GraphScope scope, NodeProto node, int index, float inputScale, QdqWeight weight, List<string> skipped)
    {
        string name = node.Input[index];
        var values = TensorData.ToFloatArray(scope.Initializer(name)!);
        int channels = weight.Axis is int a ? (int)weight.Shape[a] : values.Length;
        if (values.Length != channels)
        {
            skipped.Add($"{name} ({GraphScope.NodeLabel(node)}): {values.Length} bias values for {channels} channels; bias left in float.");
            return null;
        }
        var q = new int[values.Length];
        var scales = new float[values.Length];
        if (!AffineQuantization.TryQuantizeBias(values, inputScale, weight.Scales.ToArray(), q, scales))
        {
            skipped.Add($"{name} ({GraphScope.NodeLabel(node)}): |bias / (s_x·s_w)| would overflow int32; bias left in float.");
            return null;
        }
        return new QdqBias(name, node, q, scales, weight.Axis is not null);
    }

    // ---- rewrite ----------------------------------------------------------------------------

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, QdqPlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(context);
        if (plan.AlreadyQuantized is not null || plan.NodeList.Count == 0) return PassResult.Unchanged(Name, plan.Skipped);
        var scope = graph.Main;
        var changes = new List<string>();

        foreach (var w in plan.Weights)
        {
            string dq = AddWeightDequantize(graph, scope, w);
            foreach (var node in plan.NodeList)
                if (plan.Rules[node].Weight is { } wi && node.Input[wi.Index] == w.Name) scope.SetInput(node, wi.Index, dq);
            w.Clustered?.RemoveIfUnused();
            changes.Add($"{w.Name}: {w.ToLayerChange().StorageAfter}, max abs error {w.MaxAbsError:G3}");
        }
        foreach (var b in plan.BiasList)
        {
            int index = b.Node.Input.IndexOf(b.Name);
            scope.SetInput(b.Node, index, AddBiasDequantize(graph, scope, b));
            changes.Add($"{b.Name}: int32 bias (scale s_x·s_w)");
        }
        var paired = plan.Activations.Select(a => a.Value).ToHashSet(StringComparer.Ordinal);
        foreach (var a in plan.Activations)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            AddActivationPair(graph, scope, a, plan.Rules, paired);
        }
        if (plan.SpeedSummary is { } speed) changes.Add(speed);
        if (GuardSummary(plan.Weights) is { } guarded)
        {
            changes.Add(guarded);
            context.Log?.Invoke(guarded);
        }
        changes.Add($"{plan.NodeList.Count} nodes quantized ({string.Join(", ", plan.NodeList.GroupBy(n => n.OpType).Select(g => $"{g.Count()} {g.Key}"))}), " +
                    $"{plan.Activations.Count} activations with {Options.Activations} QuantizeLinear/DequantizeLinear pairs ({Options.Range.Method}).");
        scope.RemoveUnusedConstants();
        if (!scope.TopologicalSort())
            throw new InvalidOperationException("the quantized graph could not be ordered topologically.");
        return new PassResult(Name, true, changes, plan.Skipped);
    }

    /// <summary>One line on the layers whose u8×s8 pair sums could clip on CPUs without VNNI and what was done, or null
    /// when none could.</summary>
    internal static string? GuardSummary(IReadOnlyList<QdqWeight> weights)
    {
        var risky = weights.Where(w => w.Safety.AtRisk).ToList();
        if (risky.Count == 0) return null;
        var guard = risky[0].Safety.Guard;
        string what = guard switch
        {
            PairSumGuard.PairSafeWeights => "pair-safe weight scales (two same-sign weights of a channel sum to at most 128 codes)",
            PairSumGuard.SevenBitWeights => "7-bit weights",
            PairSumGuard.ReducedRangeActivations => "7-bit input activations",
            PairSumGuard.Uint8Weights => "uint8 weights (U8U8 kernels)",
            _ => "NO GUARD: the model may be wrong on those CPUs",
        };
        return $"{risky.Count} of {weights.Count} weights could overflow int16 pair sums on x86 CPUs without VNNI " +
               $"(u8 activation codes up to 255 × int8 weights, two products summed into 16 bits); {what}.";
    }

    private static string AddWeightDequantize(ModelGraph graph, GraphScope scope, QdqWeight w)
    {
        var shape = w.Shape.ToArray();
        long[] scaleDims = w.Axis is null ? [] : [w.Scales.Count];
        string quantized;
        if (w.Clustered is { } c)
        {
            // Gather(int8 codebook, indices): ONNX Runtime folds it at load into the int8 initializer it fuses.
            quantized = c.EmitInt8(graph, w.Codebook!);
        }
        else if (w.StoredAsUInt8)
        {
            // The same values as the int8 codes, shifted by the zero point 128: ONNX Runtime then runs U8U8 kernels.
            var shifted = new byte[w.Quantized.Count];
            for (int i = 0; i < shifted.Length; i++) shifted[i] = (byte)(w.Quantized[i] + UInt8WeightZeroPoint);
            var q = TensorData.FromUInt8(graph.UniqueName(w.Name + "_quantized"), shape, shifted);
            scope.AddInitializer(q);
            quantized = q.Name;
        }
        else
        {
            var q = TensorData.FromInt8(graph.UniqueName(w.Name + "_quantized"), shape, w.Quantized.ToArray());
            scope.AddInitializer(q);
            quantized = q.Name;
        }
        var scale = TensorData.FromFloats(graph.UniqueName(w.Name + "_scale"), scaleDims, w.Scales.ToArray());
        var zpCount = w.Scales.Count;
        var zp = w.StoredAsUInt8
            ? TensorData.FromUInt8(graph.UniqueName(w.Name + "_zero_point"), scaleDims, Enumerable.Repeat((byte)UInt8WeightZeroPoint, zpCount).ToArray())
            : TensorData.FromInt8(graph.UniqueName(w.Name + "_zero_point"), scaleDims, new sbyte[zpCount]);
        scope.AddInitializer(scale);
        scope.AddInitializer(zp);
        string output = graph.UniqueName(w.Name + "_dequantized");
        var node = Node(graph, "DequantizeLinear", w.Name + "_DequantizeLinear", [quantized, scale.Name, zp.Name], [output], w.Axis);
        if (w.Clustered is not null) scope.InsertBefore(node, scope.Producer(w.Name)!);
        else scope.AddNode(node, 0);
        return output;
    }

    private static string AddBiasDequantize(ModelGraph graph, GraphScope scope, QdqBias b)
    {
        long[] dims = [b.Quantized.Length];
        // Per-tensor weights give every bias value the same scale s_x·s_w: a scalar, which opset 10 can carry.
        long[] scaleDims = b.PerChannel ? dims : [];
        int scaleCount = b.PerChannel ? b.Scales.Length : 1;
        var q = TensorData.FromInt32(graph.UniqueName(b.Name + "_quantized"), dims, b.Quantized);
        var scale = TensorData.FromFloats(graph.UniqueName(b.Name + "_scale"), scaleDims, b.Scales.AsSpan(0, scaleCount));
        var zp = TensorData.FromInt32(graph.UniqueName(b.Name + "_zero_point"), scaleDims, new int[scaleCount]);
        scope.AddInitializer(q);
        scope.AddInitializer(scale);
        scope.AddInitializer(zp);
        string output = graph.UniqueName(b.Name + "_dequantized");
        scope.AddNode(Node(graph, "DequantizeLinear", b.Name + "_DequantizeLinear", [q.Name, scale.Name, zp.Name], [output], b.PerChannel ? 0 : null), 0);
        return output;
    }

    /// <summary>Inserts value → QuantizeLinear → DequantizeLinear and makes every reader of the value read the
    /// dequantized one (a float reader left on the original would keep the producer from fusing) — except a layer left
    /// in float whose output is quantized, which keeps reading the float value (see <see cref="ReadsFloat"/>).</summary>
    private void AddActivationPair(ModelGraph graph, GraphScope scope, QdqActivation a, IReadOnlyDictionary<NodeProto, QdqNodeRule> rules,
        IReadOnlySet<string> paired)
    {
        var readers = scope.Consumers(a.Value).Where(r => !ReadsFloat(r, rules, paired)).ToList();
        if (readers.Count == 0) return;
        var scale = TensorData.FromFloats(graph.UniqueName(a.Value + "_scale"), [], [a.Scale]);
        var zp = Options.Activations == QdqActivationType.U8
            ? TensorData.FromUInt8(graph.UniqueName(a.Value + "_zero_point"), [], [(byte)a.ZeroPoint])
            : TensorData.FromInt8(graph.UniqueName(a.Value + "_zero_point"), [], [(sbyte)a.ZeroPoint]);
        scope.AddInitializer(scale);
        scope.AddInitializer(zp);
        string quantized = graph.UniqueName(a.Value + "_quantized");
        string dequantized = graph.UniqueName(a.Value + "_dequantized");
        var q = Node(graph, "QuantizeLinear", a.Value + "_QuantizeLinear", [a.Value, scale.Name, zp.Name], [quantized], null);
        var dq = Node(graph, "DequantizeLinear", a.Value + "_DequantizeLinear", [quantized, scale.Name, zp.Name], [dequantized], null);
        foreach (var reader in readers)
            for (int i = 0; i < reader.Input.Count; i++)
                if (reader.Input[i] == a.Value) scope.SetInput(reader, i, dequantized);
        scope.AddNode(q);
        scope.AddNode(dq);
    }

    private static NodeProto Node(ModelGraph graph, string opType, string namePrefix, string[] inputs, string[] outputs, int? axis)
    {
        var node = new NodeProto { OpType = opType, Name = graph.UniqueName(namePrefix) };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        if (axis is int a)
            node.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = a });
        return node;
    }
}
