using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Google.Protobuf;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Onnx;

/// <summary>
/// The one place that decodes and encodes tensor payloads: raw_data or the typed fields, every
/// numeric ONNX type including packed int4/uint4 and int2/uint2. Payload sizes are checked against
/// the declared shape before anything is allocated, so a hostile shape cannot make us allocate.
/// External data must have been resolved by <see cref="OnnxModelIO"/> first.
/// </summary>
public static class TensorData
{
    internal static OnnxDataType TypeOf(TensorProto t) => OnnxDataTypes.FromWire(t.DataType);

    /// <summary>Number of elements a shape holds; rejects negative dimensions and overflow.</summary>
    public static long ElementCount(ReadOnlySpan<long> dims, string tensorName = "")
    {
        long n = 1;
        foreach (long d in dims)
        {
            if (d < 0)
                throw new OnnxFormatException($"tensor '{tensorName}' has a negative dimension {d}.");
            try { n = checked(n * d); }
            catch (OverflowException)
            {
                throw new OnnxFormatException($"tensor '{tensorName}' declares a shape whose element count overflows 64 bits.");
            }
        }
        return n;
    }

    internal static long ElementCount(TensorProto t) => ElementCount(t.Dims.ToArray(), t.Name);

    internal static bool IsExternal(TensorProto t) => t.DataLocation == TensorProto.Types.DataLocation.External;

    /// <summary>
    /// The payload as canonical little-endian raw bytes, whether the tensor stores raw_data or a typed
    /// field. The size is checked against the declared shape before anything is allocated. Returns the
    /// raw_data span itself when it is stored that way (no copy).
    /// </summary>
    internal static ReadOnlySpan<byte> RawBytes(TensorProto t)
    {
        if (IsExternal(t))
            throw new OnnxFormatException($"tensor '{t.Name}' keeps its data in an external file that was not loaded; read the model with OnnxModelIO so external data is resolved.");
        var type = TypeOf(t);
        int bits = OnnxDataTypes.BitsPerElement(type);
        if (bits == 0)
            throw new OnnxFormatException($"tensor '{t.Name}' has element type {t.DataType}, which has no numeric payload (strings and unknown types are not decoded).");
        long count = ElementCount(t);
        long expected = PayloadBytes(t, type, count);
        if (t.RawData.Length > 0 || !HasTypedData(t))
        {
            if (t.RawData.Length != expected)
                throw new OnnxFormatException($"tensor '{t.Name}' declares shape [{string.Join(",", t.Dims)}] of {OnnxDataTypes.Name(type)} ({expected} bytes) but its payload holds {t.RawData.Length} bytes.");
            return t.RawData.Span;
        }
        return TypedToRaw(t, type, count, expected);
    }

    // The byte count of a declared shape, or a format error naming the tensor when it cannot exist.
    private static long PayloadBytes(TensorProto t, OnnxDataType type, long count)
    {
        if (!OnnxDataTypes.TryByteCount(type, count, out long bytes))
            throw new OnnxFormatException($"tensor '{t.Name}' declares shape [{string.Join(",", t.Dims)}], too many elements of {OnnxDataTypes.Name(type)} to exist; the tensor is corrupt.");
        return bytes;
    }

    private static bool HasTypedData(TensorProto t) =>
        t.FloatData.Count > 0 || t.Int32Data.Count > 0 || t.Int64Data.Count > 0 || t.DoubleData.Count > 0 || t.Uint64Data.Count > 0;

    // Typed-field storage per onnx.proto: float_data (float, complex64), double_data (double, complex128),
    // int64_data (int64), uint64_data (uint32, uint64), int32_data (everything else: one value per entry,
    // 16-bit floats as their bit patterns, and for 4-bit and 2-bit types one packed byte per entry).
    private static byte[] TypedToRaw(TensorProto t, OnnxDataType type, long count, long expected)
    {
        var (have, want, field) = type switch
        {
            OnnxDataType.Float => (t.FloatData.Count, count, "float_data"),
            OnnxDataType.Complex64 => (t.FloatData.Count, count * 2, "float_data"),
            OnnxDataType.Double => (t.DoubleData.Count, count, "double_data"),
            OnnxDataType.Complex128 => (t.DoubleData.Count, count * 2, "double_data"),
            OnnxDataType.Int64 => (t.Int64Data.Count, count, "int64_data"),
            OnnxDataType.UInt64 or OnnxDataType.UInt32 => (t.Uint64Data.Count, count, "uint64_data"),
            _ when OnnxDataTypes.BitsPerElement(type) < 8 => (t.Int32Data.Count, expected, "int32_data"),
            _ => (t.Int32Data.Count, count, "int32_data"),
        };
        // Checked before allocating: a huge declared shape with a few values must fail here, not in new byte[].
        if (have != want)
            throw new OnnxFormatException($"tensor '{t.Name}' declares shape [{string.Join(",", t.Dims)}] of {OnnxDataTypes.Name(type)} ({want} entries of {field}) but {field} holds {have}.");
        var raw = new byte[expected];
        switch (type)
        {
            case OnnxDataType.Float or OnnxDataType.Complex64:
                for (int i = 0; i < have; i++) BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(i * 4), t.FloatData[i]);
                break;
            case OnnxDataType.Double or OnnxDataType.Complex128:
                for (int i = 0; i < have; i++) BinaryPrimitives.WriteDoubleLittleEndian(raw.AsSpan(i * 8), t.DoubleData[i]);
                break;
            case OnnxDataType.Int64:
                for (int i = 0; i < have; i++) BinaryPrimitives.WriteInt64LittleEndian(raw.AsSpan(i * 8), t.Int64Data[i]);
                break;
            case OnnxDataType.UInt64:
                for (int i = 0; i < have; i++) BinaryPrimitives.WriteUInt64LittleEndian(raw.AsSpan(i * 8), t.Uint64Data[i]);
                break;
            case OnnxDataType.UInt32:
                for (int i = 0; i < have; i++) BinaryPrimitives.WriteUInt32LittleEndian(raw.AsSpan(i * 4), (uint)t.Uint64Data[i]);
                break;
            case OnnxDataType.Int32:
                for (int i = 0; i < have; i++) BinaryPrimitives.WriteInt32LittleEndian(raw.AsSpan(i * 4), t.Int32Data[i]);
                break;
            case OnnxDataType.Int16 or OnnxDataType.UInt16 or OnnxDataType.Float16 or OnnxDataType.BFloat16:
                for (int i = 0; i < have; i++) BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan(i * 2), (ushort)t.Int32Data[i]);
                break;
            default:
                for (int i = 0; i < have; i++) raw[i] = (byte)t.Int32Data[i];
                break;
        }
        return raw;
    }

    /// <summary>Decodes any numeric tensor to float32 (integers as their values, bool as 0/1).</summary>
    internal static float[] ToFloatArray(TensorProto t)
    {
        var raw = RawBytes(t); // validates the size before we allocate
        var result = new float[ArrayLength(t)];
        DecodeToFloat(TypeOf(t), raw, result, t.Name);
        return result;
    }

    // Element count as an array length; a sub-byte tensor near 2 GiB can hold more values than an array.
    private static int ArrayLength(TensorProto t)
    {
        long count = ElementCount(t);
        if (count > Array.MaxLength)
            throw new OnnxFormatException($"tensor '{t.Name}' holds {count} elements, more than one array can; split the tensor.");
        return (int)count;
    }

    /// <summary>Decodes canonical raw bytes of <paramref name="type"/> into floats.</summary>
    public static void DecodeToFloat(OnnxDataType type, ReadOnlySpan<byte> raw, Span<float> dest, string tensorName = "")
    {
        if (OnnxDataTypes.BitsPerElement(type) > 0 && raw.Length < OnnxDataTypes.ByteCount(type, dest.Length))
            throw new ArgumentException($"tensor '{tensorName}': {raw.Length} bytes hold fewer than {dest.Length} values of {OnnxDataTypes.Name(type)}.", nameof(raw));
        switch (type)
        {
            case OnnxDataType.Float:
                MemoryMarshal.Cast<byte, float>(raw)[..dest.Length].CopyTo(dest);
                break;
            case OnnxDataType.Float16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(raw)[..dest.Length], dest);
                break;
            case OnnxDataType.BFloat16:
                var bf = MemoryMarshal.Cast<byte, ushort>(raw);
                for (int i = 0; i < dest.Length; i++) dest[i] = BitConverter.Int32BitsToSingle(bf[i] << 16);
                break;
            case OnnxDataType.Double:
                TensorPrimitives.ConvertTruncating<double, float>(MemoryMarshal.Cast<byte, double>(raw)[..dest.Length], dest);
                break;
            case OnnxDataType.Int8:
                TensorPrimitives.ConvertChecked<sbyte, float>(MemoryMarshal.Cast<byte, sbyte>(raw)[..dest.Length], dest);
                break;
            case OnnxDataType.UInt8 or OnnxDataType.Bool:
                TensorPrimitives.ConvertChecked<byte, float>(raw[..dest.Length], dest);
                break;
            case OnnxDataType.Int16:
                TensorPrimitives.ConvertChecked<short, float>(MemoryMarshal.Cast<byte, short>(raw)[..dest.Length], dest);
                break;
            case OnnxDataType.UInt16:
                TensorPrimitives.ConvertChecked<ushort, float>(MemoryMarshal.Cast<byte, ushort>(raw)[..dest.Length], dest);
                break;
            case OnnxDataType.Int32:
                TensorPrimitives.ConvertChecked<int, float>(MemoryMarshal.Cast<byte, int>(raw)[..dest.Length], dest);
                break;
            case OnnxDataType.UInt32:
                TensorPrimitives.ConvertChecked<uint, float>(MemoryMarshal.Cast<byte, uint>(raw)[..dest.Length], dest);
                break;
            case OnnxDataType.Int64:
                TensorPrimitives.ConvertTruncating<long, float>(MemoryMarshal.Cast<byte, long>(raw)[..dest.Length], dest);
                break;
            case OnnxDataType.UInt64:
                TensorPrimitives.ConvertTruncating<ulong, float>(MemoryMarshal.Cast<byte, ulong>(raw)[..dest.Length], dest);
                break;
            case OnnxDataType.Int4:
                for (int i = 0; i < dest.Length; i++) dest[i] = UnpackInt4(raw, i);
                break;
            case OnnxDataType.UInt4:
                for (int i = 0; i < dest.Length; i++) dest[i] = UnpackUInt4(raw, i);
                break;
            case OnnxDataType.Int2:
                for (int i = 0; i < dest.Length; i++) dest[i] = UnpackInt2(raw, i);
                break;
            case OnnxDataType.UInt2:
                for (int i = 0; i < dest.Length; i++) dest[i] = UnpackUInt2(raw, i);
                break;
            default:
                throw new OnnxFormatException($"tensor '{tensorName}' has element type {OnnxDataTypes.Name(type)}, which cannot be read as numbers here.");
        }
    }

    /// <summary>Decodes an integer tensor (int8..int64, uint8..uint64, packed int4/int2) to int64 values.</summary>
    internal static long[] ToInt64Array(TensorProto t)
    {
        var type = TypeOf(t);
        if (!IsInteger(type))
            throw new OnnxFormatException($"tensor '{t.Name}' has element type {OnnxDataTypes.Name(type)}, not an integer type.");
        var raw = RawBytes(t);
        var result = new long[ArrayLength(t)];
        for (int k = 0; k < result.Length; k++)
        {
            result[k] = type switch
            {
                OnnxDataType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(raw[(k * 8)..]),
                OnnxDataType.UInt64 => (long)BinaryPrimitives.ReadUInt64LittleEndian(raw[(k * 8)..]),
                OnnxDataType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(raw[(k * 4)..]),
                OnnxDataType.UInt32 => BinaryPrimitives.ReadUInt32LittleEndian(raw[(k * 4)..]),
                OnnxDataType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(raw[(k * 2)..]),
                OnnxDataType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(raw[(k * 2)..]),
                OnnxDataType.Int8 => (sbyte)raw[k],
                OnnxDataType.UInt8 or OnnxDataType.Bool => raw[k],
                OnnxDataType.Int4 => UnpackInt4(raw, k),
                OnnxDataType.UInt4 => UnpackUInt4(raw, k),
                OnnxDataType.Int2 => UnpackInt2(raw, k),
                OnnxDataType.UInt2 => UnpackUInt2(raw, k),
                _ => throw new OnnxFormatException($"tensor '{t.Name}' has element type {OnnxDataTypes.Name(type)}, not an integer type."),
            };
        }
        return result;
    }

    private static bool IsInteger(OnnxDataType type) => type is OnnxDataType.Int64 or OnnxDataType.UInt64
        or OnnxDataType.Int32 or OnnxDataType.UInt32 or OnnxDataType.Int16 or OnnxDataType.UInt16
        or OnnxDataType.Int8 or OnnxDataType.UInt8 or OnnxDataType.Bool or OnnxDataType.Int4
        or OnnxDataType.UInt4 or OnnxDataType.Int2 or OnnxDataType.UInt2;

    // ---- encoding ---------------------------------------------------------------------------

    /// <summary>A tensor with the given canonical raw bytes (checked against the shape).</summary>
    internal static TensorProto FromRaw(string name, ReadOnlySpan<long> dims, OnnxDataType type, ReadOnlySpan<byte> raw)
    {
        long expected = OnnxDataTypes.ByteCount(type, ElementCount(dims, name));
        if (raw.Length != expected)
            throw new ArgumentException($"tensor '{name}': {raw.Length} bytes given, shape [{string.Join(",", dims.ToArray())}] of {OnnxDataTypes.Name(type)} needs {expected}.");
        var t = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(raw) };
        t.Dims.AddRange(dims.ToArray());
        return t;
    }

    /// <summary>Encodes floats as float, float16 (round to nearest even), bfloat16 (round to nearest even) or double.</summary>
    internal static TensorProto FromFloats(string name, ReadOnlySpan<long> dims, ReadOnlySpan<float> values, OnnxDataType storeAs = OnnxDataType.Float)
    {
        byte[] raw;
        switch (storeAs)
        {
            case OnnxDataType.Float:
                raw = MemoryMarshal.AsBytes(values).ToArray();
                break;
            case OnnxDataType.Float16:
                raw = new byte[values.Length * 2];
                TensorPrimitives.ConvertToHalf(values, MemoryMarshal.Cast<byte, Half>(raw.AsSpan()));
                break;
            case OnnxDataType.BFloat16:
                raw = new byte[values.Length * 2];
                var bf = MemoryMarshal.Cast<byte, ushort>(raw.AsSpan());
                for (int i = 0; i < values.Length; i++) bf[i] = FloatToBFloat16(values[i]);
                break;
            case OnnxDataType.Double:
                raw = new byte[values.Length * 8];
                TensorPrimitives.ConvertTruncating<float, double>(values, MemoryMarshal.Cast<byte, double>(raw.AsSpan()));
                break;
            default:
                throw new ArgumentException($"floats cannot be stored as {OnnxDataTypes.Name(storeAs)}; quantize them first.");
        }
        return FromRaw(name, dims, storeAs, raw);
    }

    /// <summary>Encodes int8 values.</summary>
    internal static TensorProto FromInt8(string name, ReadOnlySpan<long> dims, ReadOnlySpan<sbyte> values) =>
        FromRaw(name, dims, OnnxDataType.Int8, MemoryMarshal.AsBytes(values));

    /// <summary>Encodes uint8 values.</summary>
    internal static TensorProto FromUInt8(string name, ReadOnlySpan<long> dims, ReadOnlySpan<byte> values) =>
        FromRaw(name, dims, OnnxDataType.UInt8, values);

    /// <summary>Encodes int32 values.</summary>
    internal static TensorProto FromInt32(string name, ReadOnlySpan<long> dims, ReadOnlySpan<int> values) =>
        FromRaw(name, dims, OnnxDataType.Int32, MemoryMarshal.AsBytes(values));

    /// <summary>Encodes int64 values.</summary>
    internal static TensorProto FromInt64(string name, ReadOnlySpan<long> dims, ReadOnlySpan<long> values) =>
        FromRaw(name, dims, OnnxDataType.Int64, MemoryMarshal.AsBytes(values));

    /// <summary>Encodes int4 values (each in [-8, 7]) packed two per byte.</summary>
    internal static TensorProto FromInt4(string name, ReadOnlySpan<long> dims, ReadOnlySpan<sbyte> values)
    {
        var raw = new byte[(values.Length + 1) / 2];
        PackInt4(values, raw);
        return FromRaw(name, dims, OnnxDataType.Int4, raw);
    }

    /// <summary>Encodes uint4 values (each in [0, 15]) packed two per byte.</summary>
    internal static TensorProto FromUInt4(string name, ReadOnlySpan<long> dims, ReadOnlySpan<byte> values)
    {
        var raw = new byte[(values.Length + 1) / 2];
        PackUInt4(values, raw);
        return FromRaw(name, dims, OnnxDataType.UInt4, raw);
    }

    /// <summary>
    /// Encodes integer values as any integer type (int64 down to packed int2, and bool as 0/1); each value
    /// must fit the type. uint64 values above <see cref="long.MaxValue"/> are given as their two's-complement bits.
    /// </summary>
    internal static TensorProto FromIntegers(string name, ReadOnlySpan<long> dims, OnnxDataType type, ReadOnlySpan<long> values)
    {
        if (!IsInteger(type)) throw new ArgumentException($"{OnnxDataTypes.Name(type)} is not an integer type.", nameof(type));
        var raw = new byte[OnnxDataTypes.ByteCount(type, values.Length)];
        var (min, max) = type switch
        {
            OnnxDataType.Int64 or OnnxDataType.UInt64 => (long.MinValue, long.MaxValue),
            OnnxDataType.Int32 => (int.MinValue, int.MaxValue),
            OnnxDataType.UInt32 => (0, uint.MaxValue),
            OnnxDataType.Int16 => (short.MinValue, short.MaxValue),
            OnnxDataType.UInt16 => (0, ushort.MaxValue),
            OnnxDataType.Int8 => (sbyte.MinValue, sbyte.MaxValue),
            OnnxDataType.UInt8 => (0, byte.MaxValue),
            OnnxDataType.Bool => (0, 1),
            OnnxDataType.Int4 => (-8, 7),
            OnnxDataType.UInt4 => (0, 15),
            OnnxDataType.Int2 => (-2, 1),
            _ => (0L, 3L), // uint2
        };
        int bits = OnnxDataTypes.BitsPerElement(type);
        for (int i = 0; i < values.Length; i++)
        {
            long v = values[i];
            if (v < min || v > max)
                throw new ArgumentOutOfRangeException(nameof(values), $"tensor '{name}': value {v} at {i} does not fit {OnnxDataTypes.Name(type)} [{min}, {max}].");
            if (bits < 8)
                raw[i * bits / 8] |= (byte)((v & ((1 << bits) - 1)) << (i * bits % 8));
            else
                for (int b = 0; b < bits / 8; b++) raw[i * (bits / 8) + b] = (byte)(v >> (8 * b)); // little-endian two's complement
        }
        return FromRaw(name, dims, type, raw);
    }

    // ---- sub-byte packing ---------------------------------------------------------------------

    /// <summary>Packs int4 values two per byte, the first value in the low nibble (ONNX's order).</summary>
    public static void PackInt4(ReadOnlySpan<sbyte> values, Span<byte> packed)
    {
        packed[..((values.Length + 1) / 2)].Clear();
        for (int i = 0; i < values.Length; i++)
        {
            int v = values[i];
            if (v < -8 || v > 7) throw new ArgumentOutOfRangeException(nameof(values), $"int4 value {v} at {i} is outside [-8, 7].");
            packed[i >> 1] |= (byte)((v & 0xF) << ((i & 1) * 4));
        }
    }

    /// <summary>Packs uint4 values two per byte, the first value in the low nibble.</summary>
    public static void PackUInt4(ReadOnlySpan<byte> values, Span<byte> packed)
    {
        packed[..((values.Length + 1) / 2)].Clear();
        for (int i = 0; i < values.Length; i++)
        {
            int v = values[i];
            if (v > 15) throw new ArgumentOutOfRangeException(nameof(values), $"uint4 value {v} at {i} is outside [0, 15].");
            packed[i >> 1] |= (byte)(v << ((i & 1) * 4));
        }
    }

    /// <summary>Packs int2 values four per byte, the first value in the lowest two bits.</summary>
    public static void PackInt2(ReadOnlySpan<sbyte> values, Span<byte> packed)
    {
        packed[..((values.Length + 3) / 4)].Clear();
        for (int i = 0; i < values.Length; i++)
        {
            int v = values[i];
            if (v < -2 || v > 1) throw new ArgumentOutOfRangeException(nameof(values), $"int2 value {v} at {i} is outside [-2, 1].");
            packed[i >> 2] |= (byte)((v & 0x3) << ((i & 3) * 2));
        }
    }

    /// <summary>Packs uint2 values four per byte, the first value in the lowest two bits.</summary>
    public static void PackUInt2(ReadOnlySpan<byte> values, Span<byte> packed)
    {
        packed[..((values.Length + 3) / 4)].Clear();
        for (int i = 0; i < values.Length; i++)
        {
            int v = values[i];
            if (v > 3) throw new ArgumentOutOfRangeException(nameof(values), $"uint2 value {v} at {i} is outside [0, 3].");
            packed[i >> 2] |= (byte)(v << ((i & 3) * 2));
        }
    }

    /// <summary>The int4 value at <paramref name="index"/> of a packed buffer.</summary>
    public static int UnpackInt4(ReadOnlySpan<byte> packed, int index)
    {
        int nibble = (packed[index >> 1] >> ((index & 1) * 4)) & 0xF;
        return (nibble ^ 8) - 8; // sign-extend 4 bits
    }

    /// <summary>The uint4 value at <paramref name="index"/> of a packed buffer.</summary>
    public static int UnpackUInt4(ReadOnlySpan<byte> packed, int index) => (packed[index >> 1] >> ((index & 1) * 4)) & 0xF;

    /// <summary>The int2 value at <paramref name="index"/> of a packed buffer (four per byte, first lowest).</summary>
    public static int UnpackInt2(ReadOnlySpan<byte> packed, int index)
    {
        int v = (packed[index >> 2] >> ((index & 3) * 2)) & 0x3;
        return (v ^ 2) - 2;
    }

    /// <summary>The uint2 value at <paramref name="index"/> of a packed buffer.</summary>
    public static int UnpackUInt2(ReadOnlySpan<byte> packed, int index) => (packed[index >> 2] >> ((index & 3) * 2)) & 0x3;

    /// <summary>Rounds a float to bfloat16 (nearest even), keeping NaN a NaN.</summary>
    public static ushort FloatToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}
