using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Pruning.Structured;

/// <summary>
/// Where a group's channels sit in one value: group channel <c>c</c> is at indices <c>Offset + c·Block + j</c>
/// (<c>j &lt; Block</c>) of the value's channel axis (axis 1), which has <see cref="Total"/> entries. After a
/// Flatten each of those channels is a run of H·W features; <see cref="Flattened"/> marks it (H·W is read off the
/// consumer's weight).
/// </summary>
internal readonly record struct ChannelMap(int Offset, int Block, int Total, int Rank, bool Flattened)
{
    /// <summary>The indices of the value's channel axis (times <paramref name="hw"/> features each) that group channel <paramref name="c"/> covers.</summary>
    public IEnumerable<int> Indices(int c, int hw = 1)
    {
        for (int j = 0; j < Block; j++)
        {
            int channel = Offset + c * Block + j;
            for (int p = 0; p < hw; p++) yield return channel * hw + p;
        }
    }
}

/// <summary>A constant to cut along one axis: the entries of the removed group channels go.</summary>
/// <param name="Tensor">The constant's value name.</param>
/// <param name="Node">The node that reads it.</param>
/// <param name="Axis">The axis cut.</param>
/// <param name="Map">Where the group's channels sit along that axis.</param>
/// <param name="Hw">Entries per channel index (H·W after a Flatten, else 1).</param>
/// <param name="IsWeight">True for a layer's weight (reported), false for biases and normalization parameters.</param>
internal sealed record TensorCut(string Tensor, NodeProto Node, int Axis, ChannelMap Map, int Hw, bool IsWeight);

/// <summary>How a consumer layer reads the group: a plain Conv, or a Gemm/MatMul after a Flatten.</summary>
internal enum SinkKind { Conv, Gemm, MatMul }

/// <summary>A layer that reads the group's channels as its input channels (its weight is cut along <see cref="Cut"/>).</summary>
/// <param name="Node">The consumer.</param>
/// <param name="Kind">Its kind.</param>
/// <param name="Value">The value it reads.</param>
/// <param name="Cut">The cut of its weight.</param>
internal sealed record ChannelSink(NodeProto Node, SinkKind Kind, string Value, TensorCut Cut);

/// <summary>
/// Output channels that must be pruned together: the Convs that write them (several when residual Adds join their
/// outputs), every value they flow through, and every constant to cut. Built on the original graph; a group that
/// cannot be rewritten safely carries the reason in <see cref="SkipReason"/>.
/// </summary>
internal sealed class ChannelGroup
{
    /// <summary>The Convs whose output channels are the group's channels.</summary>
    public List<NodeProto> Sources { get; } = [];

    /// <summary>Every value the channels flow through, with where they sit in it.</summary>
    public Dictionary<string, ChannelMap> Values { get; } = new(StringComparer.Ordinal);

    /// <summary>Every constant to cut.</summary>
    public List<TensorCut> Cuts { get; } = [];

    /// <summary>The layers that read the channels as input channels.</summary>
    public List<ChannelSink> Sinks { get; } = [];

    /// <summary>Depthwise Convs the channels pass through (their group attribute follows the channel count).</summary>
    public List<NodeProto> Depthwise { get; } = [];

    /// <summary>Channels in the group.</summary>
    public int Channels { get; set; }

    /// <summary>Why the group is left alone, or null.</summary>
    public string? SkipReason { get; set; }

    /// <summary>A readable name: the first source and how many layers the group ties together.</summary>
    public string Label => Sources.Count == 1
        ? $"Conv '{Sources[0].Name}'"
        : $"residual group of {Sources.Count} Convs ({string.Join(", ", Sources.Select(s => s.Name))})";
}
