using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>Gemm: A quantized, B int8 per output column (axis 0 with transB, else 1), C int32 when it is a
/// per-column vector and alpha = beta = 1; ONNX Runtime fuses it to QGemm.</summary>
internal sealed class GemmHandler : QdqOpHandler
{
    /// <inheritdoc />
    public override string OpType => "Gemm";

    /// <inheritdoc />
    public override QdqNodeRule? Describe(NodeProto node, GraphScope scope, out string? reason)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(scope);
        if (!IsComputed(scope, node, 0) || !IsWeight(scope, node, 1) || RankOf(scope, node, 1) != 2)
        {
            reason = "its B is not a 2-D float initializer or clustered weight (or its A is constant)";
            return null;
        }
        if (IntAttribute(node, "transA", 0) != 0)
        {
            reason = "transA is set; QGemm takes A as it is";
            return null;
        }
        reason = null;
        int axis = IntAttribute(node, "transB", 0) != 0 ? 0 : 1;
        // The int32 bias is added to the int32 accumulator as it is: only right when alpha and beta are 1 and C is one
        // value per output column.
        bool plainBias = FloatAttribute(node, "alpha", 1f) == 1f && FloatAttribute(node, "beta", 1f) == 1f
                         && IsFloatInitializer(scope, node, 2) && RankOf(scope, node, 2) == 1;
        return new QdqNodeRule([0], new QdqWeightInput(1, axis), plainBias ? 2 : null, QuantizeOutput: true, IsCompute: true);
    }
}
