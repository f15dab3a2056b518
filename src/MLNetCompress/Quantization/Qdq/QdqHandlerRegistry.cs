using System.Collections.Frozen;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>The op → handler table of <see cref="QdqQuantizationPass"/>, like ONNX Runtime's quantizer registry:
/// supporting an op is adding a row.</summary>
public static class QdqHandlerRegistry
{
    private static readonly FrozenDictionary<string, QdqOpHandler> handlers = new QdqOpHandler[]
    {
        new ConvHandler(),
        new ConvTransposeHandler(),
        new GemmHandler(),
        new MatMulHandler(),
        new PassThroughHandler("Relu", sharesRange: false),
        new PassThroughHandler("MaxPool", sharesRange: true, dataInputs: 1),
        new PassThroughHandler("AveragePool", sharesRange: false, dataInputs: 1),
        new PassThroughHandler("GlobalAveragePool", sharesRange: false, dataInputs: 1),
        new PassThroughHandler("Add", sharesRange: false),
        new PassThroughHandler("Concat", sharesRange: false),
        new PassThroughHandler("Reshape", sharesRange: true, dataInputs: 1),
        new PassThroughHandler("Flatten", sharesRange: true, dataInputs: 1),
        new PassThroughHandler("Transpose", sharesRange: true, dataInputs: 1),
    }.ToFrozenDictionary(h => h.OpType, StringComparer.Ordinal);

    /// <summary>The op types that have a handler.</summary>
    public static IReadOnlyCollection<string> OpTypes => handlers.Keys;

    /// <summary>The handler of an op type, or null.</summary>
    internal static QdqOpHandler? For(string opType) => handlers.GetValueOrDefault(opType);
}
