using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>Conv: X quantized, W int8 per output channel (axis 0), B int32; ONNX Runtime fuses DQ→Conv→Q to QLinearConv.</summary>
internal sealed class ConvHandler : QdqOpHandler
{
    /// <inheritdoc />
    public override string OpType => "Conv";

    /// <inheritdoc />
    public override QdqNodeRule? Describe(NodeProto node, GraphScope scope, out string? reason)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(scope);
        if (!IsComputed(scope, node, 0) || !IsWeight(scope, node, 1))
        {
            reason = "its weight is not a float initializer or clustered weight (or its input is constant)";
            return null;
        }
        reason = null;
        int? bias = IsFloatInitializer(scope, node, 2) ? 2 : null;
        return new QdqNodeRule([0], new QdqWeightInput(1, 0), bias, QuantizeOutput: true, IsCompute: true);
    }
}
