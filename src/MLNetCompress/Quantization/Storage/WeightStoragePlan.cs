using System.Globalization;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization.Storage;

/// <summary>How a stored weight is computed back to float when the model loads.</summary>
public enum StorageExpansion
{
    /// <summary>An int8 tensor and <c>Cast(→ float)</c> (any opset the pass accepts).</summary>
    CastInt8,

    /// <summary>An ONNX int4 tensor and <c>Cast(→ float)</c> (opset 21 and up).</summary>
    CastInt4,

    /// <summary>A uint8 tensor and <c>Cast(→ float)</c> (uint8 storage, any opset the pass accepts).</summary>
    CastUInt8,

    /// <summary>An ONNX uint4 tensor and <c>Cast(→ float)</c> (uint4 storage, opset 21 and up).</summary>
    CastUInt4,

    /// <summary>Packed uint8 bytes, <c>Cast(→ int32)</c> and a <c>Gather</c> of rows of a [256, values-per-byte] table (opset 7 and up).</summary>
    LookupTable,
}

/// <summary>What <see cref="WeightStoragePass"/> decided: the weights it stores and those it left, with reasons.</summary>
/// <param name="Weights">The weights to store, quantized.</param>
/// <param name="Skipped">One line per weight left as it is, with the reason.</param>
public sealed record WeightStoragePlan(IReadOnlyList<PlannedStorage> Weights, IReadOnlyList<string> Skipped);

/// <summary>A weight <see cref="WeightStoragePass"/> stores in fewer bits, with its codes and scales.</summary>
public sealed class PlannedStorage
{
    internal PlannedStorage(WeightCandidate candidate, long[] shape, StorageFormat format, StorageLayout layout,
        StorageExpansion expansion, sbyte[] codes, float[] scales, float[]? offsets, float maxAbsError)
    {
        Source = candidate.Source;
        OpType = candidate.Consumer.OpType;
        ShapeArray = shape;
        Format = format;
        Layout = layout;
        Expansion = expansion;
        Codes = codes;
        Scales = scales;
        Offsets = offsets;
        MaxAbsError = maxAbsError;
    }

    /// <summary>The weight's value name (kept: the expanding nodes produce it).</summary>
    public string Name => Source.Name;

    /// <summary>The graph it is defined in.</summary>
    public string Graph => Source.Scope.Path;

    /// <summary>Initializer or Constant node (the stored bytes and scales are kept the same way).</summary>
    public ConstantKind Kind => Source.Kind;

    /// <summary>The op that reads it as a weight (the first such node), which chose the channel axis.</summary>
    public string OpType { get; }

    /// <summary>Its shape.</summary>
    public IReadOnlyList<long> Shape => ShapeArray;

    /// <summary>Its element type before (float, float16, bfloat16 or double).</summary>
    public OnnxDataType DataType => Source.DataType;

    /// <summary>The bits per value.</summary>
    public StorageFormat Format { get; }

    /// <summary>Where each value is stored and which scale it uses.</summary>
    public StorageLayout Layout { get; }

    /// <summary>How the weight is computed back at load.</summary>
    public StorageExpansion Expansion { get; }

    /// <summary>The channel axis of the scales, or null for one group for the whole tensor.</summary>
    public int? Axis => Layout.Axis;

    /// <summary>Number of scales.</summary>
    public int ScaleCount => Scales.Length;

    /// <summary>True when each block also has an offset (<c>−zp · scale</c>): uint8 and uint4.</summary>
    public bool HasOffsets => Offsets is not null;

    /// <summary>Largest <c>|w − q · scale|</c> (asymmetric formats: <c>|w − (q · scale + offset)|</c>) over the weight (before any cast back to a 16-bit type).</summary>
    public float MaxAbsError { get; }

    /// <summary>Payload bytes before.</summary>
    public long BytesBefore => OnnxDataTypes.ByteCount(DataType, TensorData.ElementCount(ShapeArray));

    /// <summary>Payload bytes after: the packed values plus a float per scale and per offset (the lookup table, at most 8 KiB per model and format, is shared and not counted).</summary>
    public long BytesAfter => BitPacking.PackedLength(Format, Codes.LongLength) + 4L * Scales.Length * (HasOffsets ? 2 : 1);

    /// <summary>
    /// The storage after, in words, e.g. <c>int4 per-channel (axis 0), blocks of 32 + 256 float scales, lookup table</c>
    /// or <c>uint4 per-channel (axis 0) + 16 float scales and offsets, lookup table</c>.
    /// </summary>
    public string StorageAfter
    {
        get
        {
            string grouping = Axis is int a ? $"per-channel (axis {a})" : "per-tensor";
            string blocks = Layout.Blocks > 1 ? $", blocks of {Layout.BlockSize}" : "";
            string how = Expansion switch
            {
                StorageExpansion.LookupTable => "lookup table",
                _ => "cast",
            };
            string offsets = HasOffsets ? " and offsets" : "";
            return string.Create(CultureInfo.InvariantCulture, $"{Format.Name()} {grouping}{blocks} + {Scales.Length} float scales{offsets}, {how}");
        }
    }

    internal WeightSource Source { get; }

    internal long[] ShapeArray { get; }

    internal sbyte[] Codes { get; }

    internal float[] Scales { get; }

    internal float[]? Offsets { get; }

    /// <summary>The row for the compression report.</summary>
    public LayerChange ToLayerChange() =>
        new(Name, OpType, Graph, ShapeArray, OnnxDataTypes.Name(DataType), StorageAfter, BytesBefore, BytesAfter, MaxAbsError);

    /// <summary>One line: name, op, shape, storage and error.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Name} ({OpType} in {Graph}): {OnnxDataTypes.Name(DataType)}[{string.Join(",", ShapeArray)}] -> {StorageAfter}, {BytesBefore} -> {BytesAfter} bytes, max abs error {MaxAbsError:G3}");
}
