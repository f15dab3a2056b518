using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization;

namespace MLNetCompress.Pruning;

/// <summary>A constant weight of a Conv/ConvTranspose/Gemm/MatMul: where it is stored and the node that reads it.</summary>
internal sealed record WeightSite(GraphScope Scope, string Name, TensorProto Tensor, ConstantKind Kind, NodeProto Consumer, int InputIndex)
{
    public long[] Dims { get; } = Tensor.Dims.ToArray();

    public OnnxDataType DataType => OnnxDataTypes.FromWire(Tensor.DataType);

    public long Count => TensorData.ElementCount(Dims, Name);
}

/// <summary>
/// Finds the weights pruning and weight sharing edit: constant weight inputs of the listed ops (initializers or
/// Constant nodes, in the main graph or a subgraph, looked up through enclosing graphs), each once, and says
/// why each other one is left alone.
/// </summary>
internal static class LayerWeights
{
    /// <summary>The ops whose weights are edited by default.</summary>
    public static readonly string[] DefaultOps = ["Conv", "ConvTranspose", "Gemm", "MatMul"];

    public static List<WeightSite> Find(ModelGraph graph, IReadOnlySet<string> ops, IReadOnlySet<string> excluded,
        long minElements, List<string> skipped)
    {
        var sites = new List<WeightSite>();
        var seen = new HashSet<(GraphScope, string)>();
        foreach (var scope in graph.Scopes)
            foreach (var node in scope.Nodes)
            {
                if (node.Domain is not ("" or "ai.onnx") || !ops.Contains(node.OpType)) continue;
                for (int i = 0; i < node.Input.Count; i++)
                {
                    string input = node.Input[i];
                    if (input.Length == 0 || !WeightInputs.IsWeightInput(node, i)) continue;
                    var site = Resolve(scope, input, node, i);
                    if (site is null && scope.Producer(input) is { OpType: "DequantizeLinear" } && seen.Add((scope, input)))
                        skipped.Add($"{input} ({node.OpType} in {scope.Path}): already quantized (int8 behind DequantizeLinear); " +
                                    "compress the float model first, then quantize: the quantizers keep clusters and zeros.");
                    if (site is null || !seen.Add((site.Scope, site.Name))) continue;
                    string? reason = Reason(graph, site, excluded, minElements);
                    if (reason is null) sites.Add(site);
                    else skipped.Add($"{site.Name} ({node.OpType} in {site.Scope.Path}): {reason}");
                }
            }
        return sites;
    }

    private static WeightSite? Resolve(GraphScope scope, string value, NodeProto consumer, int index)
    {
        for (var s = scope; s is not null; s = s.Parent)
        {
            if (s.Initializer(value) is { } t) return new WeightSite(s, value, t, ConstantKind.Initializer, consumer, index);
            if (s.Producer(value) is { } p)
                return p is { OpType: "Constant", Domain: "" or "ai.onnx" } && GraphScope.ConstantNodeTensor(p) is { } ct
                    ? new WeightSite(s, value, ct, ConstantKind.ConstantNode, consumer, index)
                    : null; // computed (already compressed, or an activation)
            if (s.IsGraphInput(value)) return null;
        }
        return null;
    }

    private static string? Reason(ModelGraph graph, WeightSite site, IReadOnlySet<string> excluded, long minElements)
    {
        if (excluded.Contains(site.Name) || (site.Consumer.Name.Length > 0 && excluded.Contains(site.Consumer.Name)))
            return "excluded by name.";
        var type = site.DataType;
        // double would not survive a float round trip; integer weights are already quantized.
        if (type is not (OnnxDataType.Float or OnnxDataType.Float16 or OnnxDataType.BFloat16))
            return $"stored as {OnnxDataTypes.Name(type)}; only float, float16 and bfloat16 weights are edited.";
        if (site.Count < minElements) return $"{site.Count} elements, below MinElements {minElements}.";
        if (site.Scope.IsGraphOutput(site.Name)) return "it is also a graph output; its exact value is part of the model's result.";
        if (site.Kind == ConstantKind.Initializer && graph.IrVersion >= 4 && site.Scope.Proto.Input.Any(i => i.Name == site.Name))
            return "it is also a graph input, so callers may override it; left as it is.";
        return null;
    }

    /// <summary>
    /// The axis a weight is reduced over (the dot-product axis): Conv input channels (axis 1), ConvTranspose
    /// input channels (axis 0), Gemm K (axis 1 with transB, else 0), MatMul K (rank−2 of a constant B, last
    /// of a constant A). Null when the rank does not have it.
    /// </summary>
    public static int? ReductionAxis(NodeProto node, int index, int rank)
    {
        int? axis = node.OpType switch
        {
            "Conv" when index == 1 => 1,
            "ConvTranspose" when index == 1 => 0,
            "Gemm" when index == 1 => WeightInputs.IntAttribute(node, "transB", 0) != 0 ? 1 : 0,
            "Gemm" when index == 0 => WeightInputs.IntAttribute(node, "transA", 0) != 0 ? 0 : 1,
            "MatMul" when index == 1 => rank - 2,
            "MatMul" when index == 0 => rank - 1,
            _ => null,
        };
        return axis is int a && a >= 0 && a < rank ? a : null;
    }

    /// <summary>Re-encodes edited float values in the weight's own type (exact: every value came from that type or is 0).</summary>
    public static TensorProto Encode(WeightSite site, ReadOnlySpan<float> values) =>
        TensorData.FromFloats(site.Name, site.Dims, values, site.DataType);
}
