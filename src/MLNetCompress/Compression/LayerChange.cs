namespace MLNetCompress.Compression;

/// <summary>What a pass did to one weight: its storage before and after, and how far its values moved.</summary>
/// <param name="Weight">The weight's value name.</param>
/// <param name="OpType">The op that reads it as a weight (the first such node).</param>
/// <param name="Graph">The graph it lives in: <c>main</c> or a subgraph path.</param>
/// <param name="Shape">Its shape.</param>
/// <param name="StorageBefore">How it was stored, e.g. <c>float</c>.</param>
/// <param name="StorageAfter">How it is stored now, e.g. <c>int8 per-channel (axis 0) + float scales</c>.</param>
/// <param name="BytesBefore">Payload bytes before.</param>
/// <param name="BytesAfter">Payload bytes after, everything that replaced it included.</param>
/// <param name="MaxAbsError">Largest absolute difference between the weight and the value the model now computes for it.</param>
public sealed record LayerChange(
    string Weight,
    string OpType,
    string Graph,
    IReadOnlyList<long> Shape,
    string StorageBefore,
    string StorageAfter,
    long BytesBefore,
    long BytesAfter,
    double MaxAbsError)
{
    /// <summary>The ranks of the factors a low-rank split wrote (two for Tucker-2); null when the weight was not factorized.</summary>
    public IReadOnlyList<int>? Ranks { get; init; }

    /// <summary>The layer alone in ONNX Runtime on the CPU that compressed it, float, in milliseconds (the int8 speed check); null when not timed.</summary>
    public double? FloatMs { get; init; }

    /// <summary>The layer alone as written (its int8 kernel plus the conversions its neighbours force on it), in milliseconds; null when not timed.</summary>
    public double? CompressedMs { get; init; }

    /// <summary>Parameters stored for the weight after the change when it is no longer one tensor of <see cref="Shape"/> (the factors of a split); null otherwise.</summary>
    public long? ParamsAfter { get; init; }
}
