using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.KernelSafety;
using MLNetCompress.Quantization.NBits;

namespace MLNetCompress.Quantization.Dynamic;

/// <summary>
/// Dynamic quantization of MatMuls with a constant float weight [K, N]: the weight is stored as int8
/// (symmetric, per output column by default) and the activation is quantized to uint8 at run time:
/// <c>DynamicQuantizeLinear(A) → MatMulInteger(A_q, W_q, A_zp, W_zp) → Cast(float) → Mul(A_scale · W_scale)</c>,
/// the layout ONNX Runtime's own quantizer emits and fuses to <c>DynamicQuantizeMatMul</c>
/// (<c>MatMulIntegerToFloat</c> where the activation's quantization is shared).
/// </summary>
/// <remarks>
/// An activation read by several rewritten MatMuls (Q, K and V projections) is quantized once.
/// Needs ai.onnx opset 11 (DynamicQuantizeLinear); MatMuls with a computed B, a weight that is not a
/// float 2-D initializer, a weight below <see cref="DynamicQuantizationOptions.MinElements"/>, a weight that
/// is also a graph input or output, or an excluded node name are left alone with a reason. With
/// <see cref="DynamicQuantizationOptions.QuantizeEmbeddings"/>, large constant Gather tables (word embeddings, the
/// larger half of a small BERT) are stored int8 per row as well. A clustered weight (index tensor + float codebook,
/// <see cref="ClusteredWeight"/>) keeps its index tensor: its codebook becomes int8 and <c>Gather(int8 codebook, indices)</c>
/// feeds MatMulInteger; ONNX Runtime folds the Gather at load and fuses as for a plain weight.
/// </remarks>
public sealed class DynamicQuantizationPass : LayerReportingPass<DynamicQuantizationPlan>
{
    /// <summary>The lowest ai.onnx opset the pass rewrites (DynamicQuantizeLinear and MatMulInteger).</summary>
    public const long MinOpset = 11;

    /// <summary>The zero point of weights stored as uint8 (<see cref="PairSumGuard.Uint8Weights"/>).</summary>
    public const int UInt8WeightZeroPoint = 128;

    /// <summary>Creates the pass.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public DynamicQuantizationPass(DynamicQuantizationOptions? options = null)
    {
        Options = options ?? new DynamicQuantizationOptions();
        Options.Validate();
    }

    /// <summary>The options.</summary>
    public DynamicQuantizationOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "dynamic-quantization";

    /// <inheritdoc />
    protected override IEnumerable<LayerChange> LayerChanges(DynamicQuantizationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return plan.MatMuls.Select(m => m.ToLayerChange()).Concat(plan.Embeddings.Select(e => e.ToLayerChange()));
    }

    /// <inheritdoc />
    protected override DynamicQuantizationPlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(context);
        var skipped = new List<string>();
        long opset = graph.OnnxOpset;
        if (opset < MinOpset)
        {
            skipped.Add($"all MatMuls: the model uses ai.onnx opset {opset}; dynamic quantization needs opset {MinOpset} (DynamicQuantizeLinear, MatMulInteger).");
            return new DynamicQuantizationPlan([], skipped);
        }
        var matMuls = new List<DynamicMatMul>();
        var clustered = new List<(GraphScope Scope, NodeProto Node, ClusteredWeight Weight)>();
        foreach (var scope in graph.Scopes)
            foreach (var node in scope.Nodes)
            {
                context.Cancellation.ThrowIfCancellationRequested();
                if (node.OpType != "MatMul" || !GraphEdits.IsOnnxDomain(node) || node.Input.Count != 2) continue;
                if (ClusteredWeight.Find(scope, node.Input[1]) is { } c)
                {
                    // Quantized through its codebook below, once the clustered values are read (one session for all).
                    if (ClusteredReason(scope, node, c) is { } why) skipped.Add($"MatMul '{GraphScope.NodeLabel(node)}' in {scope.Path}: {why}");
                    else clustered.Add((scope, node, c));
                    continue;
                }
                var planned = PlanMatMul(graph, scope, node, out string? reason);
                if (planned is not null) matMuls.Add(planned);
                else if (reason is not null) skipped.Add($"MatMul '{GraphScope.NodeLabel(node)}' in {scope.Path}: {reason}");
            }
        if (clustered.Count > 0)
        {
            var values = ClusteredWeight.ReadValues(graph, clustered.Select(c => c.Weight).ToList(), skipped);
            foreach (var (scope, node, weight) in clustered)
            {
                var codebook = values.TryGetValue(weight, out var v) ? weight.Quantize(v, Options.PerChannel ? 1 : null, 1,
                    Options.Guard == PairSumGuard.Uint8Weights ? PairSumGuard.PairSafeWeights : Options.Guard) : null;
                if (codebook is null)
                    skipped.Add($"MatMul '{GraphScope.NodeLabel(node)}' in {scope.Path}: its clustered weight " +
                                (v is null ? "could not be evaluated." : "holds NaN or infinite values."));
                else matMuls.Add(new DynamicMatMul(scope, node, weight, codebook));
            }
            // Graph order, as the report lists layers.
            var order = new Dictionary<NodeProto, int>(ReferenceEqualityComparer.Instance);
            foreach (var n in graph.Scopes.SelectMany(s => s.Nodes)) order[n] = order.Count;
            matMuls.Sort((x, y) => order[x.Node].CompareTo(order[y.Node]));
        }
        var embeddings = Options.QuantizeEmbeddings
            ? EmbeddingQuantization.Plan(graph, EmbeddingScheme.Int8PerRow, Options.MinEmbeddingElements, 0, true, Options.ExcludeNodes, skipped, context.Cancellation)
            : [];
        return new DynamicQuantizationPlan(matMuls, skipped, embeddings);
    }

    /// <summary>Why a MatMul with a clustered weight stays as it is, or null (the checks <see cref="MatMulWeight"/> makes of a plain one).</summary>
    private string? ClusteredReason(GraphScope scope, NodeProto node, ClusteredWeight weight)
    {
        if (Options.ExcludeNodes.Contains(node.Name) || Options.ExcludeNodes.Contains(GraphScope.NodeLabel(node))) return "excluded by name.";
        if (scope.ConstantValue(node.Input[0]) is not null) return "its A is constant too.";
        if (weight.Dims.Length != 2) return $"its clustered weight has rank {weight.Dims.Length}, not 2.";
        if (weight.Count < Options.MinElements) return $"{weight.Count} weight elements, below MinElements {Options.MinElements}.";
        return null;
    }

    private DynamicMatMul? PlanMatMul(ModelGraph graph, GraphScope scope, NodeProto node, out string? reason)
    {
        var tensor = MatMulWeight.Find(graph, scope, node, Options.ExcludeNodes, Options.MinElements, out reason);
        if (tensor is null) return null;
        string w = node.Input[1];
        var dims = tensor.Dims.ToArray();
        long count = dims[0] * dims[1];
        int? axis = Options.PerChannel ? 1 : null;
        var values = TensorData.ToFloatArray(tensor);
        var quantized = new sbyte[count];
        var scales = new float[SymmetricInt8.ScaleCount(dims, axis)];
        // The output columns (axis 1) are the accumulators whose pair sums the guard bounds.
        if (!GuardedInt8.TryQuantize(values, dims, axis, 1, Options.Guard, quantized, scales, out float error, out var safety))
        {
            reason = "its weight holds NaN or infinite values.";
            return null;
        }
        reason = null;
        return new DynamicMatMul(scope, node, w, dims, quantized, scales, error, safety);
    }

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, DynamicQuantizationPlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(context);
        if (plan.MatMuls.Count == 0 && plan.Embeddings.Count == 0) return PassResult.Unchanged(Name, plan.Skipped);
        var changes = new List<string>(plan.MatMuls.Count);
        // The quantized activation per (graph, value): Q, K and V read the same input and share one quantize.
        var quantizedInputs = new Dictionary<(GraphScope, string), (string Q, string Scale, string ZeroPoint)>();
        var weights = new HashSet<(GraphScope, string)>();
        for (int k = 0; k < plan.MatMuls.Count; k++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "rewrite", k, plan.MatMuls.Count);
            var m = plan.MatMuls[k];
            Rewrite(graph, m, quantizedInputs);
            weights.Add((m.Scope, m.Weight));
            changes.Add(m.ToString());
        }
        var risky = plan.MatMuls.Count(m => m.Safety.AtRisk);
        if (risky > 0)
        {
            string line = $"{risky} of {plan.MatMuls.Count} MatMul weights could overflow int16 pair sums on x86 CPUs without VNNI " +
                          $"(u8 activation codes up to 255 × int8 weights, two products summed into 16 bits); guard: {Options.Guard}.";
            changes.Add(line);
            context.Log?.Invoke(line);
        }
        foreach (var (scope, w) in weights) GraphEdits.RemoveIfUnused(scope, w);
        foreach (var m in plan.MatMuls) m.Clustered?.RemoveIfUnused();
        foreach (var e in plan.Embeddings)
        {
            EmbeddingQuantization.Rewrite(graph, e);
            changes.Add(e.ToString());
        }
        context.Report(Name, "rewrite", plan.MatMuls.Count, plan.MatMuls.Count);
        return new PassResult(Name, true, changes, plan.Skipped);
    }

    private static void Rewrite(ModelGraph graph, DynamicMatMul m, Dictionary<(GraphScope, string), (string Q, string Scale, string ZeroPoint)> quantizedInputs)
    {
        var scope = m.Scope;
        var node = m.Node;
        string a = node.Input[0], y = node.Output[0];
        string prefix = node.Name.Length > 0 ? node.Name : m.Weight;
        // The MatMul goes first, so the new nodes (the last of which produces its output) take its place.
        int at = GraphEdits.IndexOf(scope, node);
        scope.RemoveNode(node);
        if (!quantizedInputs.TryGetValue((scope, a), out var aq))
        {
            aq = (graph.UniqueName(a + "_quantized"), graph.UniqueName(a + "_scale"), graph.UniqueName(a + "_zero_point"));
            scope.AddNode(GraphEdits.Node(graph, "DynamicQuantizeLinear", a + "_quantize", [a], [aq.Q, aq.Scale, aq.ZeroPoint]), at++);
            quantizedInputs[(scope, a)] = aq;
        }
        long[] scaleDims = m.Scales.Length > 1 ? [m.Scales.Length] : [];
        string q;
        if (m.Clustered is { } c)
        {
            // Gather(int8 codebook, indices) before the MatMul's place: folded at load into the int8 B that ONNX Runtime fuses.
            int before = scope.Nodes.Count;
            q = c.EmitInt8(graph, m.Codebook!);
            at += scope.Nodes.Count - before;
        }
        else if (m.StoredAsUInt8)
        {
            // The int8 codes shifted by the zero point: the same values, run on ONNX Runtime's U8U8 kernels.
            var shifted = new byte[m.Quantized.Length];
            for (int i = 0; i < shifted.Length; i++) shifted[i] = (byte)(m.Quantized[i] + UInt8WeightZeroPoint);
            var weight = TensorData.FromUInt8(graph.UniqueName(m.Weight + "_quantized"), m.ShapeArray, shifted);
            scope.AddInitializer(weight);
            q = weight.Name;
        }
        else
        {
            var weight = TensorData.FromInt8(graph.UniqueName(m.Weight + "_quantized"), m.ShapeArray, m.Quantized);
            scope.AddInitializer(weight);
            q = weight.Name;
        }
        var scale = TensorData.FromFloats(graph.UniqueName(m.Weight + "_scale"), scaleDims, m.Scales);
        var zeroPoint = m.StoredAsUInt8
            ? TensorData.FromUInt8(graph.UniqueName(m.Weight + "_zero_point"), scaleDims, Enumerable.Repeat((byte)UInt8WeightZeroPoint, m.Scales.Length).ToArray())
            : TensorData.FromInt8(graph.UniqueName(m.Weight + "_zero_point"), scaleDims, new sbyte[m.Scales.Length]);
        scope.AddInitializer(scale);
        scope.AddInitializer(zeroPoint);

        string integer = graph.UniqueName(y + "_int32");
        string asFloat = graph.UniqueName(y + "_int32_float");
        string scaleProduct = graph.UniqueName(y + "_scale");
        scope.AddNode(GraphEdits.Node(graph, "MatMulInteger", prefix + "_integer", [aq.Q, q, aq.ZeroPoint, zeroPoint.Name], [integer]), at++);
        scope.AddNode(GraphEdits.Node(graph, "Mul", prefix + "_scale_product", [aq.Scale, scale.Name], [scaleProduct]), at++);
        scope.AddNode(GraphEdits.Node(graph, "Cast", prefix + "_cast", [integer], [asFloat],
            GraphEdits.IntAttr("to", (long)OnnxDataType.Float)), at++);
        scope.AddNode(GraphEdits.Node(graph, "Mul", prefix + "_rescale", [asFloat, scaleProduct], [y]), at++);
    }
}
