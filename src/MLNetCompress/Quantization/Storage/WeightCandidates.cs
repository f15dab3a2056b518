using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization.Storage;

/// <summary>A constant found behind a weight input: where it is defined and how it is stored.</summary>
internal sealed record WeightSource(GraphScope Scope, string Name, TensorProto Tensor, ConstantKind Kind, NodeProto? Node)
{
    /// <summary>Its element type.</summary>
    public OnnxDataType DataType => OnnxDataTypes.FromWire(Tensor.DataType);
}

/// <summary>A weight to store in fewer bits: where it is and the node that made it one (and chose its channel axis).</summary>
internal sealed record WeightCandidate(WeightSource Source, NodeProto Consumer, int InputIndex);

/// <summary>
/// Finds the float weights the storage passes may rewrite, wherever they live: initializers or Constant
/// nodes, in the main graph or in If/Loop/Scan bodies, and behind a <c>Cast(→ float)</c> of a float16
/// weight. A weight read by several nodes is found once (its first reader picks the axis). Shared by
/// <see cref="Int8WeightStoragePass"/> and <see cref="WeightStoragePass"/>.
/// </summary>
internal static class WeightCandidates
{
    /// <summary>Every weight input of the given ops, once per constant; reasons for weights found behind something else.</summary>
    public static List<WeightCandidate> Find(ModelGraph graph, IReadOnlySet<string> ops, List<string> skipped)
    {
        var candidates = new List<WeightCandidate>();
        var seen = new HashSet<(GraphScope, string)>();
        foreach (var scope in graph.Scopes)
            foreach (var node in scope.Nodes)
            {
                if (!GraphEdits.IsOnnxDomain(node) || !ops.Contains(node.OpType)) continue;
                for (int i = 0; i < node.Input.Count; i++)
                {
                    string input = node.Input[i];
                    if (input.Length == 0 || !WeightInputs.IsWeightInput(node, i)) continue;
                    var (source, reason) = Resolve(scope, input);
                    if (reason is not null) skipped.Add($"{input} ({node.OpType} '{GraphScope.NodeLabel(node)}'): {reason}");
                    if (source is not null && seen.Add((source.Scope, source.Name)))
                        candidates.Add(new WeightCandidate(source, node, i));
                }
            }
        return candidates;
    }

    /// <summary>
    /// Why a candidate must stay as it is (not a float type, too small, a graph output, an overridable
    /// initializer, bfloat16 below opset 13), or null when it may be rewritten.
    /// </summary>
    public static string? Ineligible(ModelGraph graph, WeightSource source, long minElements)
    {
        var type = source.DataType;
        if (!OnnxDataTypes.IsFloatingPoint(type))
            return $"stored as {OnnxDataTypes.Name(type)}, not a float type; left as it is.";
        if (type == OnnxDataType.BFloat16 && graph.OnnxOpset < 13)
            return $"a bfloat16 weight needs opset 13 to cast back (the model has {graph.OnnxOpset}).";
        long count = TensorData.ElementCount(source.Tensor.Dims.ToArray(), source.Name);
        if (count < minElements)
            return $"{count} elements, below MinElements {minElements}.";
        if (source.Scope.IsGraphOutput(source.Name))
            return "it is also a graph output; its exact value is part of the model's result.";
        // From IR 4 an initializer listed among the inputs is a default the caller may override at run time.
        if (source.Kind == ConstantKind.Initializer && graph.IrVersion >= 4 && source.Scope.Proto.Input.Any(i => i.Name == source.Name))
            return "it is also a graph input, so callers may override it; left as it is.";
        return null;
    }

    /// <summary>
    /// The constant behind a value read in <paramref name="scope"/>, looked up through enclosing graphs and
    /// through one <c>Cast(→ float)</c>; null for a computed value. A reason is given only where a weight
    /// was expected but is not one a storage pass can rewrite.
    /// </summary>
    private static (WeightSource? Source, string? Reason) Resolve(GraphScope scope, string value, bool throughCast = true)
    {
        for (var s = scope; s is not null; s = s.Parent)
        {
            if (s.Initializer(value) is { } t) return (new WeightSource(s, value, t, ConstantKind.Initializer, null), null);
            if (s.Producer(value) is { } p)
            {
                if (!GraphEdits.IsOnnxDomain(p)) return (null, null);
                switch (p.OpType)
                {
                    case "Constant" when GraphScope.ConstantNodeTensor(p) is { } ct:
                        return (new WeightSource(s, value, ct, ConstantKind.ConstantNode, p), null);
                    case "Cast" when throughCast && p.Input.Count == 1
                                     && WeightInputs.IntAttribute(p, "to", 0) == (long)OnnxDataType.Float:
                        // float16 weights are often kept as float16 and cast to float for the op.
                        var (inner, _) = Resolve(s, p.Input[0], throughCast: false);
                        return inner is not null && OnnxDataTypes.IsFloatingPoint(inner.DataType) ? (inner, null) : (null, null);
                    case "DequantizeLinear":
                        return (null, "already quantized (computed by DequantizeLinear)");
                    case "Gather" or "Reshape" when ClusteredWeight.Find(s, value) is { } clustered:
                        return (null, $"clustered ({clustered}): its indices and codebook are already smaller than storage would make it, " +
                                      "and re-quantizing the gathered values would lose the clusters; left as it is");
                    default:
                        return (null, null);
                }
            }
            // A graph input, or a Loop/Scan body input: not a constant.
            if (s.IsGraphInput(value)) return (null, null);
        }
        return (null, null);
    }
}
