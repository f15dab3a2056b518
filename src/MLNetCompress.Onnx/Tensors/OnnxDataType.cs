namespace MLNetCompress.Onnx;

/// <summary>ONNX tensor element types; the values are TensorProto.DataType's wire values.</summary>
public enum OnnxDataType
{
    /// <summary>Not set.</summary>
    Undefined = 0,
    /// <summary>32-bit IEEE float.</summary>
    Float = 1,
    /// <summary>Unsigned 8-bit integer.</summary>
    UInt8 = 2,
    /// <summary>Signed 8-bit integer.</summary>
    Int8 = 3,
    /// <summary>Unsigned 16-bit integer.</summary>
    UInt16 = 4,
    /// <summary>Signed 16-bit integer.</summary>
    Int16 = 5,
    /// <summary>Signed 32-bit integer.</summary>
    Int32 = 6,
    /// <summary>Signed 64-bit integer.</summary>
    Int64 = 7,
    /// <summary>UTF-8 string.</summary>
    String = 8,
    /// <summary>Boolean, one byte per value.</summary>
    Bool = 9,
    /// <summary>16-bit IEEE half float.</summary>
    Float16 = 10,
    /// <summary>64-bit IEEE float.</summary>
    Double = 11,
    /// <summary>Unsigned 32-bit integer.</summary>
    UInt32 = 12,
    /// <summary>Unsigned 64-bit integer.</summary>
    UInt64 = 13,
    /// <summary>Complex of two floats.</summary>
    Complex64 = 14,
    /// <summary>Complex of two doubles.</summary>
    Complex128 = 15,
    /// <summary>Brain float: the upper 16 bits of a float.</summary>
    BFloat16 = 16,
    /// <summary>8-bit float E4M3, finite only.</summary>
    Float8E4M3FN = 17,
    /// <summary>8-bit float E4M3, finite only, no negative zero.</summary>
    Float8E4M3FNUZ = 18,
    /// <summary>8-bit float E5M2.</summary>
    Float8E5M2 = 19,
    /// <summary>8-bit float E5M2, finite only, no negative zero.</summary>
    Float8E5M2FNUZ = 20,
    /// <summary>Unsigned 4-bit integer, two per byte, first in the low nibble.</summary>
    UInt4 = 21,
    /// <summary>Signed 4-bit integer, two per byte, first in the low nibble.</summary>
    Int4 = 22,
    /// <summary>4-bit float E2M1.</summary>
    Float4E2M1 = 23,
    /// <summary>8-bit exponent-only float E8M0.</summary>
    Float8E8M0 = 24,
    /// <summary>Unsigned 2-bit integer, four per byte, first in the lowest bits.</summary>
    UInt2 = 25,
    /// <summary>Signed 2-bit integer, four per byte, first in the lowest bits.</summary>
    Int2 = 26,
}

/// <summary>Facts about <see cref="OnnxDataType"/> values.</summary>
public static class OnnxDataTypes
{
    /// <summary>Bits one element takes in raw_data (0 for strings and unknown types).</summary>
    public static int BitsPerElement(OnnxDataType type) => type switch
    {
        OnnxDataType.Float or OnnxDataType.Int32 or OnnxDataType.UInt32 => 32,
        OnnxDataType.Double or OnnxDataType.Int64 or OnnxDataType.UInt64 or OnnxDataType.Complex64 => 64,
        OnnxDataType.Complex128 => 128,
        OnnxDataType.Float16 or OnnxDataType.BFloat16 or OnnxDataType.Int16 or OnnxDataType.UInt16 => 16,
        OnnxDataType.Int8 or OnnxDataType.UInt8 or OnnxDataType.Bool or OnnxDataType.Float8E4M3FN
            or OnnxDataType.Float8E4M3FNUZ or OnnxDataType.Float8E5M2 or OnnxDataType.Float8E5M2FNUZ
            or OnnxDataType.Float8E8M0 => 8,
        OnnxDataType.Int4 or OnnxDataType.UInt4 or OnnxDataType.Float4E2M1 => 4,
        OnnxDataType.Int2 or OnnxDataType.UInt2 => 2,
        _ => 0,
    };

    /// <summary>
    /// Bytes that <paramref name="count"/> elements take in raw_data (sub-byte types round up). Throws
    /// <see cref="OnnxFormatException"/> when the byte count does not fit 64 bits (a hostile shape).
    /// </summary>
    public static long ByteCount(OnnxDataType type, long count) =>
        TryByteCount(type, count, out long bytes) ? bytes
            : throw new OnnxFormatException($"{count} elements of {Name(type)} take more than 2^63 bytes; the tensor's shape is corrupt.");

    /// <summary>The byte count, or false when it does not fit 64 bits (computed without overflowing).</summary>
    internal static bool TryByteCount(OnnxDataType type, long count, out long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        int bits = BitsPerElement(type);
        long whole = count / 8, rest = count % 8;
        // count * bits could wrap around and match a small payload; whole bytes first, then the rest.
        if (bits > 0 && whole > (long.MaxValue - bits) / bits) { bytes = 0; return false; }
        bytes = whole * bits + (rest * bits + 7) / 8;
        return true;
    }

    /// <summary>True for the types that hold real numbers (float, float16, bfloat16, double).</summary>
    public static bool IsFloatingPoint(OnnxDataType type) =>
        type is OnnxDataType.Float or OnnxDataType.Float16 or OnnxDataType.BFloat16 or OnnxDataType.Double;

    /// <summary>True for 8-bit or narrower integers: the types a quantized weight is stored in.</summary>
    public static bool IsQuantizedInteger(OnnxDataType type) =>
        type is OnnxDataType.Int8 or OnnxDataType.UInt8 or OnnxDataType.Int4 or OnnxDataType.UInt4
            or OnnxDataType.Int2 or OnnxDataType.UInt2;

    /// <summary>The name ONNX's documentation uses (float, float16, int8, ...).</summary>
    public static string Name(OnnxDataType type) => type switch
    {
        OnnxDataType.Float => "float",
        OnnxDataType.Double => "double",
        OnnxDataType.Float16 => "float16",
        OnnxDataType.BFloat16 => "bfloat16",
        _ => type.ToString().ToLowerInvariant(),
    };

    /// <summary>Converts a wire value, naming it when it is not a known type.</summary>
    public static OnnxDataType FromWire(int value) =>
        Enum.IsDefined(typeof(OnnxDataType), value) ? (OnnxDataType)value : OnnxDataType.Undefined;
}
