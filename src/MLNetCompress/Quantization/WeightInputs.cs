using System.Collections.Frozen;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization;

/// <summary>
/// Which inputs of an op hold weights, and the axis of their output channels: one row per op, the way
/// ONNX Runtime's quantizer keeps its handler registry (Conv 0, ConvTranspose 1, Gemm 0 if transB else 1,
/// MatMul last). Adding an op is adding a row.
/// </summary>
internal static class WeightInputs
{
    /// <summary>The channel axis of input <c>index</c> of a node when that input is a weight, else null.</summary>
    private delegate int? ChannelAxis(NodeProto node, int index, int rank);

    private static readonly FrozenDictionary<string, ChannelAxis> rules = new Dictionary<string, ChannelAxis>(StringComparer.Ordinal)
    {
        // W is [M, C/group, k...]: output channels first.
        ["Conv"] = (_, index, _) => index == 1 ? 0 : null,
        // W is [C, M/group, k...]: output channels second.
        ["ConvTranspose"] = (_, index, _) => index == 1 ? 1 : null,
        // B is [N, K] with transB, else [K, N].
        ["Gemm"] = (node, index, _) => index == 1 ? (IntAttribute(node, "transB", 0) != 0 ? 0 : 1) : null,
        // A constant B: its last axis is the output columns; a constant A: its rows are the output rows.
        ["MatMul"] = (_, index, rank) => index switch { 1 => rank - 1, 0 => Math.Max(rank - 2, 0), _ => null },
        // An embedding table: one scale per gathered row (Gather's own axis).
        ["Gather"] = (node, index, rank) => index == 0 ? Normalize((int)IntAttribute(node, "axis", 0), rank) : null,
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>The ops that have a row here.</summary>
    public static IReadOnlyCollection<string> SupportedOps => rules.Keys;

    /// <summary>True when input <paramref name="index"/> of an op of this type can be a weight.</summary>
    public static bool IsWeightInput(NodeProto node, int index) =>
        rules.TryGetValue(node.OpType, out var rule) && rule(node, index, 2) is not null;

    /// <summary>The output-channel axis of a weight input of rank <paramref name="rank"/>; null when the node's
    /// attributes name no axis inside that rank (the weight then gets one scale).</summary>
    public static int? Axis(NodeProto node, int index, int rank) =>
        rules.TryGetValue(node.OpType, out var rule) && rule(node, index, rank) is int a && a >= 0 && a < rank ? a : null;

    internal static long IntAttribute(NodeProto node, string name, long fallback)
    {
        foreach (var a in node.Attribute)
            if (a.Name == name) return a.I;
        return fallback;
    }

    private static int? Normalize(int axis, int rank) => axis < 0 ? axis + rank : axis;
}
