using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization;

/// <summary>Which MatMul nodes carry a weight the transformer quantizers (dynamic int8, MatMulNBits) may rewrite:
/// B a 2-D float initializer of the node's own graph, A computed, and B not also a graph input or output.</summary>
internal static class MatMulWeight
{
    /// <summary>The node's constant weight, or null with the reason (null reason: B is computed, e.g. attention
    /// scores — not a weight, nothing to report).</summary>
    public static TensorProto? Find(ModelGraph graph, GraphScope scope, NodeProto node, IReadOnlySet<string> excludeNodes, long minElements, out string? reason)
    {
        string name = GraphScope.NodeLabel(node);
        if (excludeNodes.Contains(node.Name) || excludeNodes.Contains(name))
        {
            reason = "excluded by name.";
            return null;
        }
        string a = node.Input[0], w = node.Input[1];
        var tensor = scope.Initializer(w);
        if (tensor is null)
        {
            reason = scope.ConstantValue(w) is null && GraphEdits.Constant(scope, w) is null
                ? null
                : "its weight is a constant but not an initializer of this graph.";
            return null;
        }
        if (scope.Initializer(a) is not null || scope.ConstantValue(a) is not null)
        {
            reason = "its A is constant too.";
            return null;
        }
        if (OnnxDataTypes.FromWire(tensor.DataType) != OnnxDataType.Float)
        {
            reason = $"its weight is {OnnxDataTypes.Name(OnnxDataTypes.FromWire(tensor.DataType))}, not float.";
            return null;
        }
        if (tensor.Dims.Count != 2)
        {
            reason = $"its weight has rank {tensor.Dims.Count}, not 2.";
            return null;
        }
        long count = tensor.Dims[0] * tensor.Dims[1];
        if (count < minElements)
        {
            reason = $"{count} weight elements, below MinElements {minElements}.";
            return null;
        }
        // IR 3 models list initializers among the inputs too; only IR >= 4 inputs are real overrides.
        if (scope.IsGraphOutput(w) || (graph.IrVersion >= 4 && scope.Proto.Input.Any(i => i.Name == w)))
        {
            reason = "its weight is also a graph input or output; left as it is.";
            return null;
        }
        reason = null;
        return tensor;
    }
}
