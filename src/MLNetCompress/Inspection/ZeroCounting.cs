using System.Runtime.InteropServices;
using MLNetCompress.Onnx;

namespace MLNetCompress.Inspection;

/// <summary>
/// Counts zeros in canonical raw tensor bytes without decoding to float: the payload is reinterpreted as
/// a span of its element type and counted with the vectorised <c>MemoryExtensions.Count</c>.
/// </summary>
internal static class ZeroCounting
{
    /// <summary>Elements that are exactly zero (for floating types both +0 and -0).</summary>
    public static long CountZeros(OnnxDataType type, ReadOnlySpan<byte> raw, long count)
    {
        int n = checked((int)count);
        switch (type)
        {
            case OnnxDataType.Float:
                var f = MemoryMarshal.Cast<byte, uint>(raw)[..n];
                return f.Count(0u) + f.Count(0x8000_0000u);
            case OnnxDataType.Double:
                var d = MemoryMarshal.Cast<byte, ulong>(raw)[..n];
                return d.Count(0ul) + d.Count(0x8000_0000_0000_0000ul);
            case OnnxDataType.Float16 or OnnxDataType.BFloat16:
                var h = MemoryMarshal.Cast<byte, ushort>(raw)[..n];
                return h.Count((ushort)0) + h.Count((ushort)0x8000);
            case OnnxDataType.Float8E4M3FN or OnnxDataType.Float8E5M2:
                return raw[..n].Count((byte)0) + raw[..n].Count((byte)0x80);
            case OnnxDataType.Float8E4M3FNUZ or OnnxDataType.Float8E5M2FNUZ:
                return raw[..n].Count((byte)0); // 0x80 is NaN in the FNUZ formats
            case OnnxDataType.Float8E8M0:
                return 0; // exponent-only: no zero value
            case OnnxDataType.Float4E2M1:
                long zeros = 0;
                for (int i = 0; i < n; i++)
                    if ((TensorData.UnpackUInt4(raw, i) & 0x7) == 0) zeros++;
                return zeros;
            default:
                return CountEqual(type, raw, 0, count, 0);
        }
    }

    /// <summary>Elements in [<paramref name="start"/>, <paramref name="start"/> + <paramref name="count"/>) of an
    /// integer tensor that equal <paramref name="value"/>.</summary>
    public static long CountEqual(OnnxDataType type, ReadOnlySpan<byte> raw, long start, long count, long value)
    {
        int s = checked((int)start), n = checked((int)count);
        switch (type)
        {
            case OnnxDataType.Int8:
                return value is < sbyte.MinValue or > sbyte.MaxValue ? 0 : MemoryMarshal.Cast<byte, sbyte>(raw).Slice(s, n).Count((sbyte)value);
            case OnnxDataType.UInt8 or OnnxDataType.Bool:
                return value is < 0 or > byte.MaxValue ? 0 : raw.Slice(s, n).Count((byte)value);
            case OnnxDataType.Int16:
                return value is < short.MinValue or > short.MaxValue ? 0 : MemoryMarshal.Cast<byte, short>(raw).Slice(s, n).Count((short)value);
            case OnnxDataType.UInt16:
                return value is < 0 or > ushort.MaxValue ? 0 : MemoryMarshal.Cast<byte, ushort>(raw).Slice(s, n).Count((ushort)value);
            case OnnxDataType.Int32:
                return value is < int.MinValue or > int.MaxValue ? 0 : MemoryMarshal.Cast<byte, int>(raw).Slice(s, n).Count((int)value);
            case OnnxDataType.UInt32:
                return value is < 0 or > uint.MaxValue ? 0 : MemoryMarshal.Cast<byte, uint>(raw).Slice(s, n).Count((uint)value);
            case OnnxDataType.Int64:
                return MemoryMarshal.Cast<byte, long>(raw).Slice(s, n).Count(value);
            case OnnxDataType.UInt64:
                return value < 0 ? 0 : MemoryMarshal.Cast<byte, ulong>(raw).Slice(s, n).Count((ulong)value);
            case OnnxDataType.Int4 or OnnxDataType.UInt4 or OnnxDataType.Int2 or OnnxDataType.UInt2:
                // Packed sub-byte values: unpack one at a time (they are small tensors in practice).
                long hits = 0;
                for (int i = s; i < s + n; i++)
                {
                    int v = type switch
                    {
                        OnnxDataType.Int4 => TensorData.UnpackInt4(raw, i),
                        OnnxDataType.UInt4 => TensorData.UnpackUInt4(raw, i),
                        OnnxDataType.Int2 => TensorData.UnpackInt2(raw, i),
                        _ => TensorData.UnpackUInt2(raw, i),
                    };
                    if (v == value) hits++;
                }
                return hits;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "not an integer element type");
        }
    }
}
