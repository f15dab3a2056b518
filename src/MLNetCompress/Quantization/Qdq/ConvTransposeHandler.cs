using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>ConvTranspose: W is [C, M/group, k...], so its output channels are axis 1; B int32. ONNX Runtime fuses it
/// to QLinearConvTranspose.</summary>
internal sealed class ConvTransposeHandler : QdqOpHandler
{
    /// <inheritdoc />
    public override string OpType => "ConvTranspose";

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
        // Per-channel scales along axis 1 describe M/group channels per group; with groups they would not line up
        // with the bias's M channels.
        if (IntAttribute(node, "group", 1) != 1)
        {
            reason = "grouped ConvTranspose is left in float";
            return null;
        }
        reason = null;
        int? bias = IsFloatInitializer(scope, node, 2) ? 2 : null;
        return new QdqNodeRule([0], new QdqWeightInput(1, 1), bias, QuantizeOutput: true, IsCompute: true);
    }
}
