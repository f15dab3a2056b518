using MLNetCompress.Onnx;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>Finds signs that a model is already quantized: quantizing it again would stack rounding errors.</summary>
public static class QuantizedModelDetector
{
    private static readonly HashSet<string> quantizedOps = new(StringComparer.Ordinal)
    {
        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger",
        "MatMulNBits", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm", "QAttention",
    };

    /// <summary>A sentence naming the quantized ops found (with counts), or null for a float model.</summary>
    public static string? Describe(ModelGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var found = graph.Scopes.SelectMany(s => s.Nodes)
            .Where(n => quantizedOps.Contains(n.OpType) || n.OpType.StartsWith("QLinear", StringComparison.Ordinal))
            .GroupBy(n => n.OpType, StringComparer.Ordinal)
            .Select(g => $"{g.Count()} {g.Key}")
            .ToList();
        return found.Count == 0 ? null
            : $"the model is already quantized ({string.Join(", ", found)}); it is left as it is.";
    }
}
