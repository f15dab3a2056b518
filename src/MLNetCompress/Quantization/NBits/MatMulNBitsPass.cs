using System.Numerics.Tensors;
using MLNetCompress.Calibration;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.Qdq;

namespace MLNetCompress.Quantization.NBits;

/// <summary>
/// n-bit weight quantization of MatMuls with a constant float weight <c>[K, N]</c> as ONNX Runtime's
/// <c>com.microsoft.MatMulNBits(A, B, scales[, zero_points])</c>: blocks of <see cref="MatMulNBitsOptions.BlockSize"/>
/// along K, <c>B[N, kBlocks, blockSize·bits/8]</c> uint8 packed lowest bits first, <c>scales[N, kBlocks]</c> float, packed
/// uint8 zero points <c>[N, ceil(kBlocks·bits/8)]</c> (absent when symmetric: ONNX Runtime then uses <c>2^(bits−1)</c>).
/// Values by round to nearest or by GPTQ from the second moment of each layer's calibration inputs. With
/// <see cref="MatMulNBitsOptions.QuantizeEmbeddings"/>, large constant Gather tables become 4-bit
/// <c>com.microsoft.GatherBlockQuantized</c>.
/// </summary>
/// <remarks>
/// A model that already holds quantized ops (MatMulNBits, QDQ, MatMulInteger, ...) is left alone with a reason.
/// MatMuls with a computed B, a weight that is not a float 2-D initializer, a weight below
/// <see cref="MatMulNBitsOptions.MinElements"/>, a weight that is also a graph input or output, or an excluded name are
/// left alone with a reason. GPTQ statistics come from one calibration run of the float model (layers do not see the
/// quantization of earlier layers); MatMuls inside subgraphs get round to nearest.
/// </remarks>
public sealed class MatMulNBitsPass : LayerReportingPass<MatMulNBitsPlan>
{
    /// <summary>The domain of MatMulNBits and GatherBlockQuantized.</summary>
    public const string MicrosoftDomain = "com.microsoft";

    /// <summary>Creates the pass.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public MatMulNBitsPass(MatMulNBitsOptions? options = null)
    {
        Options = options ?? new MatMulNBitsOptions();
        Options.Validate();
    }

    /// <summary>The options.</summary>
    public MatMulNBitsOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "matmul-nbits";

    /// <inheritdoc />
    protected override IEnumerable<LayerChange> LayerChanges(MatMulNBitsPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return plan.MatMuls.Select(m => m.ToLayerChange()).Concat(plan.Embeddings.Select(e => e.ToLayerChange()));
    }

    /// <summary>A sentence naming the quantized ops of an already quantized model, or null.</summary>
    public static string? AlreadyQuantized(ModelGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        if (QuantizedModelDetector.Describe(graph) is { } described) return described;
        int gathers = graph.Scopes.SelectMany(s => s.Nodes).Count(n => n.OpType == "GatherBlockQuantized");
        return gathers == 0 ? null : $"the model is already quantized ({gathers} GatherBlockQuantized); it is left as it is.";
    }

    /// <inheritdoc />
    protected override MatMulNBitsPlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(context);
        var skipped = new List<string>();
        if (AlreadyQuantized(graph) is { } already)
        {
            skipped.Add(already);
            return new MatMulNBitsPlan([], [], skipped);
        }
        var candidates = new List<(GraphScope Scope, NodeProto Node, TensorProto Weight)>();
        foreach (var scope in graph.Scopes)
            foreach (var node in scope.Nodes)
            {
                context.Cancellation.ThrowIfCancellationRequested();
                if (node.OpType != "MatMul" || !GraphEdits.IsOnnxDomain(node) || node.Input.Count != 2) continue;
                var weight = Candidate(graph, scope, node, out string? reason);
                if (weight is not null) candidates.Add((scope, node, weight));
                else if (reason is not null) skipped.Add($"MatMul '{GraphScope.NodeLabel(node)}' in {scope.Path}: {reason}");
            }

        var moments = Options.Algorithm == NBitsAlgorithm.Gptq && candidates.Count > 0
            ? SecondMoments(graph, candidates, context) : new Dictionary<string, double[]>(StringComparer.Ordinal);
        var matMuls = new List<NBitsMatMul>(candidates.Count);
        // Q, K and V read the same input: its inverse-Hessian factor is computed once.
        var hessians = new Dictionary<string, GptqSolver.Hessian?>(StringComparer.Ordinal);
        for (int i = 0; i < candidates.Count; i++)
        {
            var (scope, node, tensor) = candidates[i];
            context.Report(Name, "quantize", i, candidates.Count);
            int k = (int)tensor.Dims[0], n = (int)tensor.Dims[1];
            var values = TensorData.ToFloatArray(tensor);
            if (!float.IsFinite(TensorPrimitives.Sum<float>(values)))
            {
                skipped.Add($"MatMul '{GraphScope.NodeLabel(node)}' in {scope.Path}: its weight holds NaN or infinite values.");
                continue;
            }
            BlockQuantizedWeight? quantized = null;
            var algorithm = NBitsAlgorithm.RoundToNearest;
            if (Options.Algorithm == NBitsAlgorithm.Gptq)
            {
                if (scope.Parent is null && moments.TryGetValue(node.Input[0], out var h))
                {
                    if (!hessians.TryGetValue(node.Input[0], out var prepared))
                        hessians[node.Input[0]] = prepared = GptqSolver.Prepare(h, k, Options.GptqDamping, context.Cancellation);
                    if (prepared is not null && prepared.K == k)
                    {
                        quantized = GptqSolver.Quantize(values, prepared, n, Options.Bits, Options.BlockSize, Options.Symmetric, context.Cancellation);
                        algorithm = NBitsAlgorithm.Gptq;
                    }
                    else skipped.Add($"MatMul '{GraphScope.NodeLabel(node)}': its input statistics are singular even after damping; rounded to nearest instead of GPTQ.");
                }
                else skipped.Add($"MatMul '{GraphScope.NodeLabel(node)}' in {scope.Path}: no calibration statistics for its input (only main-graph values are calibrated); rounded to nearest instead of GPTQ.");
            }
            quantized ??= BlockQuantizer.RoundToNearest(values, k, n, Options.Bits, Options.BlockSize, Options.Symmetric);
            matMuls.Add(new NBitsMatMul(scope, node, node.Input[1], quantized, algorithm));
        }
        context.Report(Name, "quantize", candidates.Count, candidates.Count);
        var embeddings = Options.QuantizeEmbeddings
            ? EmbeddingQuantization.Plan(graph, EmbeddingScheme.Int4Blocked, Options.MinEmbeddingElements, Options.BlockSize, Options.Symmetric,
                Options.ExcludeNodes, skipped, context.Cancellation)
            : [];
        return new MatMulNBitsPlan(matMuls, embeddings, skipped);
    }

    /// <summary>E[x·xᵀ] of each main-graph MatMul input, from one calibration run of the float model.</summary>
    private Dictionary<string, double[]> SecondMoments(ModelGraph graph, List<(GraphScope Scope, NodeProto Node, TensorProto Weight)> candidates, PassContext context)
    {
        var requests = candidates.Where(c => c.Scope.Parent is null).Select(c => c.Node.Input[0]).Distinct(StringComparer.Ordinal)
            .Select(v => new CovarianceRequest(v, -1)).ToList();
        context.Report(Name, "calibrate", 0, 1);
        var stats = CalibrationCollector.CollectCovariances(graph, requests, Options.Calibration!, Options.CalibrationSettings, context.Cancellation);
        context.Report(Name, "calibrate", 1, 1);
        return stats.ToDictionary(kv => kv.Key, kv => kv.Value.SecondMoment(), StringComparer.Ordinal);
    }

    private TensorProto? Candidate(ModelGraph graph, GraphScope scope, NodeProto node, out string? reason) =>
        MatMulWeight.Find(graph, scope, node, Options.ExcludeNodes, Options.MinElements, out reason);

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, MatMulNBitsPlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(context);
        if (plan.MatMuls.Count == 0 && plan.Embeddings.Count == 0) return PassResult.Unchanged(Name, plan.Skipped);
        graph.RequireOpset(MicrosoftDomain, 1);
        var changes = new List<string>(plan.MatMuls.Count + plan.Embeddings.Count);
        var weights = new HashSet<(GraphScope, string)>();
        for (int i = 0; i < plan.MatMuls.Count; i++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "rewrite", i, plan.MatMuls.Count);
            var m = plan.MatMuls[i];
            Rewrite(graph, m, Options.AccuracyLevel);
            weights.Add((m.Scope, m.Weight));
            changes.Add(m.ToString());
        }
        foreach (var (scope, w) in weights) GraphEdits.RemoveIfUnused(scope, w);
        foreach (var e in plan.Embeddings)
        {
            EmbeddingQuantization.Rewrite(graph, e);
            changes.Add(e.ToString());
        }
        context.Report(Name, "rewrite", plan.MatMuls.Count, plan.MatMuls.Count);
        return new PassResult(Name, true, changes, plan.Skipped);
    }

    private static void Rewrite(ModelGraph graph, NBitsMatMul m, int accuracyLevel)
    {
        var scope = m.Scope;
        var node = m.Node;
        var q = m.Quantized;
        string prefix = node.Name.Length > 0 ? node.Name : m.Weight;
        int blocks = q.BlockCount;
        var b = TensorData.FromUInt8(graph.UniqueName(m.Weight + "_nbits"), [q.N, blocks, NBitsPacking.BlobSize(q.BlockSize, q.Bits)], q.PackedValues());
        var scales = TensorData.FromFloats(graph.UniqueName(m.Weight + "_nbits_scale"), [q.N, blocks], q.Scales);
        scope.AddInitializer(b);
        scope.AddInitializer(scales);
        var inputs = new List<string> { node.Input[0], b.Name, scales.Name };
        if (!q.Symmetric)
        {
            var zp = TensorData.FromUInt8(graph.UniqueName(m.Weight + "_nbits_zero_point"),
                [q.N, NBitsPacking.ZeroPointBytesPerColumn(blocks, q.Bits)], q.PackedZeroPoints());
            scope.AddInitializer(zp);
            inputs.Add(zp.Name);
        }
        var replacement = GraphEdits.Node(graph, "MatMulNBits", prefix + "_nbits", inputs, [node.Output[0]],
            GraphEdits.IntAttr("K", q.K), GraphEdits.IntAttr("N", q.N), GraphEdits.IntAttr("bits", q.Bits),
            GraphEdits.IntAttr("block_size", q.BlockSize), GraphEdits.IntAttr("accuracy_level", accuracyLevel));
        replacement.Domain = MicrosoftDomain;
        int at = GraphEdits.IndexOf(scope, node);
        scope.RemoveNode(node);
        scope.AddNode(replacement, at);
    }
}
