using System.Globalization;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Pruning.Structured;

/// <summary>What <see cref="StructuredPruningPass"/> decided: the channels each group loses, the new constants, and
/// the groups left alone with the reason.</summary>
public sealed class StructuredPruningPlan
{
    internal StructuredPruningPlan(IReadOnlyList<PrunedChannelGroup> groups, IReadOnlyList<string> skipped, IReadOnlyList<string> notes,
        IReadOnlyList<PlannedTensor> tensors, IReadOnlyList<string> changedValues, IReadOnlyList<PlannedBias> newBiases)
    {
        Groups = groups;
        Skipped = skipped;
        Notes = notes;
        Tensors = tensors;
        ChangedValues = changedValues;
        NewBiases = newBiases;
    }

    /// <summary>The groups that lose channels, in graph order.</summary>
    public IReadOnlyList<PrunedChannelGroup> Groups { get; }

    /// <summary>One line per group left alone, saying why.</summary>
    public IReadOnlyList<string> Skipped { get; }

    /// <summary>Notes on the reconstruction (what was re-fitted, what could not be).</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>Channels removed over all groups.</summary>
    public int RemovedChannels => Groups.Sum(g => g.Removed.Count);

    internal IReadOnlyList<PlannedTensor> Tensors { get; }

    internal IReadOnlyList<string> ChangedValues { get; }

    internal IReadOnlyList<PlannedBias> NewBiases { get; }
}

/// <summary>One group that loses channels.</summary>
/// <param name="Layers">The Convs that write its channels (more than one for a residual group).</param>
/// <param name="Consumers">The layers that read them and lose input channels.</param>
/// <param name="ChannelsBefore">Channels before.</param>
/// <param name="ChannelsAfter">Channels kept.</param>
/// <param name="Removed">The removed channel indices (of the original numbering), ascending.</param>
/// <param name="Criterion">How they were ranked.</param>
/// <param name="ExplainedVariance">With reconstruction: the share of the removed channels' variance the kept ones
/// explain at the first consumer (1 = nothing lost); null without.</param>
public sealed record PrunedChannelGroup(IReadOnlyList<string> Layers, IReadOnlyList<string> Consumers, int ChannelsBefore, int ChannelsAfter,
    IReadOnlyList<int> Removed, ChannelCriterion Criterion, double? ExplainedVariance)
{
    /// <inheritdoc />
    public override string ToString()
    {
        string refit = ExplainedVariance is double e
            ? string.Create(CultureInfo.InvariantCulture, $", reconstruction explains {e:0.0%} of the removed channels' variance")
            : "";
        return $"{string.Join(" + ", Layers)}: {ChannelsBefore} -> {ChannelsAfter} channels by {Criterion}, {Consumers.Count} consumer(s) cut{refit}";
    }
}

/// <summary>A constant's new payload (already cut) and, for a layer's weight, its report row.</summary>
internal sealed record PlannedTensor(string Name, TensorProto Tensor, LayerChange? Change);

/// <summary>A bias (Conv input 2, Gemm input C, or an Add after a MatMul) that reconstruction creates where none was.</summary>
internal sealed record PlannedBias(NodeProto Node, long[] Dims, float[] Values, OnnxDataType Type);
