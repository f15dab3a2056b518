using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>MatMul: A quantized; a constant B int8 per output column (its last axis), a computed B quantized as an
/// activation. ONNX Runtime fuses it to QLinearMatMul (MatMulIntegerToFloat when the output stays float).</summary>
internal sealed class MatMulHandler : QdqOpHandler
{
    /// <inheritdoc />
    public override string OpType => "MatMul";

    /// <inheritdoc />
    public override QdqNodeRule? Describe(NodeProto node, GraphScope scope, out string? reason)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(scope);
        if (!IsComputed(scope, node, 0))
        {
            reason = "its A is constant";
            return null;
        }
        reason = null;
        if (IsWeight(scope, node, 1) && RankOf(scope, node, 1) >= 2)
            return new QdqNodeRule([0], new QdqWeightInput(1, RankOf(scope, node, 1) - 1), null, QuantizeOutput: true, IsCompute: true);
        if (IsComputed(scope, node, 1))
            return new QdqNodeRule([0, 1], null, null, QuantizeOutput: true, IsCompute: true);
        reason = "its B is a constant but not a float initializer or clustered weight of rank 2 or more";
        return null;
    }
}
