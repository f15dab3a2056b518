using System.Globalization;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization;

/// <summary>What <see cref="Int8WeightStoragePass"/> decided: the weights it will store as int8 (already
/// quantized) and the ones it leaves, each with the reason.</summary>
public sealed class Int8WeightStoragePlan
{
    internal Int8WeightStoragePlan(IReadOnlyList<PlannedWeight> weights, IReadOnlyList<string> skipped)
    {
        Weights = weights;
        Skipped = skipped;
    }

    /// <summary>The weights to store as int8, in graph order.</summary>
    public IReadOnlyList<PlannedWeight> Weights { get; }

    /// <summary>One line per weight left as it is, saying why.</summary>
    public IReadOnlyList<string> Skipped { get; }

    /// <summary>Payload bytes of the planned weights before.</summary>
    public long BytesBefore => Weights.Sum(w => w.BytesBefore);

    /// <summary>Payload bytes of the planned weights after (int8 values plus scales).</summary>
    public long BytesAfter => Weights.Sum(w => w.BytesAfter);
}

/// <summary>One weight the pass stores as int8, with its quantized values.</summary>
public sealed class PlannedWeight
{
    internal PlannedWeight(GraphScope scope, string name, ConstantKind kind, NodeProto? constantNode, string opType,
        long[] shape, OnnxDataType dataType, int? axis, sbyte[] quantized, float[] scales, float maxAbsError)
    {
        Scope = scope; Name = name; Kind = kind; ConstantNode = constantNode; OpType = opType;
        ShapeArray = shape; DataType = dataType; Axis = axis; Quantized = quantized; Scales = scales; MaxAbsError = maxAbsError;
    }

    /// <summary>The weight's value name (kept: the dequantizing nodes produce it).</summary>
    public string Name { get; }

    /// <summary>The graph it is defined in.</summary>
    public string Graph => Scope.Path;

    /// <summary>Initializer or Constant node (the int8 values are stored the same way).</summary>
    public ConstantKind Kind { get; }

    /// <summary>The op that reads it as a weight (the first such node), which chose the channel axis.</summary>
    public string OpType { get; }

    /// <summary>Its shape.</summary>
    public IReadOnlyList<long> Shape => ShapeArray;

    /// <summary>Its element type before (float, float16, bfloat16 or double).</summary>
    public OnnxDataType DataType { get; }

    /// <summary>The channel axis of the scales, or null for one scale for the whole tensor.</summary>
    public int? Axis { get; }

    /// <summary>Number of scales.</summary>
    public int ScaleCount => Scales.Length;

    /// <summary>Largest <c>|w - q * scale|</c> over the weight (before any cast back to a 16-bit type).</summary>
    public float MaxAbsError { get; }

    /// <summary>Payload bytes before.</summary>
    public long BytesBefore => OnnxDataTypes.ByteCount(DataType, Quantized.LongLength);

    /// <summary>Payload bytes after: one byte per value plus a float per scale.</summary>
    public long BytesAfter => Quantized.LongLength + 4L * Scales.Length;

    internal GraphScope Scope { get; }

    internal NodeProto? ConstantNode { get; }

    internal long[] ShapeArray { get; }

    internal sbyte[] Quantized { get; }

    internal float[] Scales { get; }

    /// <summary>The storage after, in words: <c>int8 per-channel (axis 0) + float scales</c>.</summary>
    public string StorageAfter => Axis is int a
        ? $"int8 per-channel (axis {a}) + {Scales.Length} float scales"
        : "int8 per-tensor + 1 float scale";

    /// <summary>The row for the compression report.</summary>
    public LayerChange ToLayerChange() =>
        new(Name, OpType, Graph, ShapeArray, OnnxDataTypes.Name(DataType), StorageAfter, BytesBefore, BytesAfter, MaxAbsError);

    /// <summary>One line: name, op, shape, storage and error.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Name} ({OpType} in {Graph}): {OnnxDataTypes.Name(DataType)}[{string.Join(",", ShapeArray)}] -> {StorageAfter}, {BytesBefore} -> {BytesAfter} bytes, max abs error {MaxAbsError:G3}");
}
