using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>A weight input of a node and the axis of its output channels (the per-channel scale axis).</summary>
/// <param name="Index">The input index.</param>
/// <param name="Axis">The output-channel axis.</param>
public sealed record QdqWeightInput(int Index, int Axis);

/// <summary>What a handler decided for one node: which inputs are activations to quantize, which is the weight, which
/// the bias, and whether the output is quantized (and whether it must share its input's scale).</summary>
/// <param name="Activations">Input indexes read as quantized activations.</param>
/// <param name="Weight">The weight input, or null.</param>
/// <param name="Bias">The bias input to store as int32 (scale s_x·s_w), or null.</param>
/// <param name="QuantizeOutput">True when output 0 gets a QuantizeLinear/DequantizeLinear pair.</param>
/// <param name="SharesInputRange">True when the output must use input 0's scale and zero point (ops ONNX Runtime
/// runs on int8 data directly only when the two agree: MaxPool, Reshape, Flatten, Transpose).</param>
/// <param name="IsCompute">True for the ops that do the arithmetic (Conv, Gemm, MatMul): the ones that make the model
/// faster; pass-through ops are quantized only next to them.</param>
public sealed record QdqNodeRule(IReadOnlyList<int> Activations, QdqWeightInput? Weight, int? Bias, bool QuantizeOutput,
    bool SharesInputRange = false, bool IsCompute = false);

/// <summary>
/// One op kind's quantization rule, as in ONNX Runtime's quantizer registry: looks at a node and says what of it
/// gets quantized. Handlers only read the graph.
/// </summary>
internal abstract class QdqOpHandler
{
    /// <summary>The op type handled.</summary>
    public abstract string OpType { get; }

    /// <summary>The rule for <paramref name="node"/>, or null with <paramref name="reason"/> when it stays float.</summary>
    /// <param name="node">A node of <see cref="OpType"/> in the main graph.</param>
    /// <param name="scope">The main graph.</param>
    /// <param name="reason">Why the node stays float.</param>
    public abstract QdqNodeRule? Describe(NodeProto node, GraphScope scope, out string? reason);

    /// <summary>True when input <paramref name="index"/> is a float initializer of the graph (a weight the pass can fold).</summary>
    protected static bool IsFloatInitializer(GraphScope scope, NodeProto node, int index) =>
        index < node.Input.Count && node.Input[index].Length > 0 && scope.Initializer(node.Input[index]) is { } t
        && OnnxDataTypes.FromWire(t.DataType) == OnnxDataType.Float;

    /// <summary>True when input <paramref name="index"/> is a weight the pass can fold: a float initializer, or a
    /// clustered weight (<see cref="ClusteredWeight"/>: its codebook is quantized and the index tensor kept).</summary>
    protected static bool IsWeight(GraphScope scope, NodeProto node, int index) =>
        IsFloatInitializer(scope, node, index)
        || (index < node.Input.Count && ClusteredWeight.Find(scope, node.Input[index]) is not null);

    /// <summary>The rank of a weight input (<see cref="IsWeight"/>).</summary>
    protected static int RankOf(GraphScope scope, NodeProto node, int index) =>
        scope.Initializer(node.Input[index]) is { } t ? t.Dims.Count : ClusteredWeight.Find(scope, node.Input[index])!.Dims.Length;

    /// <summary>True when input <paramref name="index"/> exists and is computed (not a constant).</summary>
    protected static bool IsComputed(GraphScope scope, NodeProto node, int index) =>
        index < node.Input.Count && node.Input[index].Length > 0 && scope.ConstantValue(node.Input[index]) is null;

    /// <summary>An integer attribute, or <paramref name="fallback"/>.</summary>
    protected static long IntAttribute(NodeProto node, string name, long fallback) => WeightInputs.IntAttribute(node, name, fallback);

    /// <summary>A float attribute, or <paramref name="fallback"/>.</summary>
    protected static float FloatAttribute(NodeProto node, string name, float fallback)
    {
        foreach (var a in node.Attribute)
            if (a.Name == name) return a.F;
        return fallback;
    }
}
