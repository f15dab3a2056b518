using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace MLNetCompress.Quantization.Storage;

/// <summary>
/// Packs the codes of a <see cref="StorageFormat"/> tightly into bytes, the first value in the lowest bits
/// (ONNX's order for int4): int4 two per byte as 4-bit two's complement, int2 four per byte as 2-bit two's
/// complement, binary eight per byte with bit 1 for +1 and 0 for −1, uint4 two per byte unsigned. Also builds
/// the 256-row table that turns a byte back into its values.
/// </summary>
/// <remarks>Codes travel as <see cref="sbyte"/>; a uint8 code is its byte's bits (200 is <c>unchecked((sbyte)200)</c>).</remarks>
public static class BitPacking
{
    /// <summary>Bytes that <paramref name="count"/> values take.</summary>
    public static long PackedLength(StorageFormat format, long count)
    {
        int perByte = format.ValuesPerByte();
        return (count + perByte - 1) / perByte;
    }

    /// <summary>Packs <paramref name="codes"/> into <paramref name="packed"/> (<see cref="PackedLength"/> long); a short last byte is padded with zero bits.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A code is outside the format's range.</exception>
    public static void Pack(StorageFormat format, ReadOnlySpan<sbyte> codes, Span<byte> packed)
    {
        long length = PackedLength(format, codes.Length);
        if (packed.Length != length)
            throw new ArgumentException($"{packed.Length} bytes for {codes.Length} {format.Name()} values; they take {length}.", nameof(packed));
        // One vectorized range check, then tight loops without a branch per value.
        var (min, max) = format switch
        {
            StorageFormat.Binary => (-1, 1),
            // Every byte is a uint8 code.
            StorageFormat.UInt8 => (sbyte.MinValue, sbyte.MaxValue),
            StorageFormat.UInt4 => (0, format.QMax()),
            _ => (-(1 << (format.Bits() - 1)), (1 << (format.Bits() - 1)) - 1),
        };
        if (codes.Length > 0 && (TensorPrimitives.Min(codes) < min || TensorPrimitives.Max(codes) > max
                                 || (format == StorageFormat.Binary && codes.Contains((sbyte)0))))
        {
            int at = 0;
            while (codes[at] >= min && codes[at] <= max && !(format == StorageFormat.Binary && codes[at] == 0)) at++;
            throw new ArgumentOutOfRangeException(nameof(codes), $"{format.Name()} code {codes[at]} at {at} is outside its range.");
        }
        int whole = codes.Length / format.ValuesPerByte();
        switch (format)
        {
            case StorageFormat.Int8 or StorageFormat.UInt8:
                MemoryMarshal.AsBytes(codes).CopyTo(packed);
                return;
            case StorageFormat.Int4 or StorageFormat.UInt4:
                for (int j = 0; j < whole; j++)
                    packed[j] = (byte)((codes[2 * j] & 0xF) | (codes[2 * j + 1] << 4));
                break;
            case StorageFormat.Int2:
                for (int j = 0; j < whole; j++)
                {
                    var c = codes.Slice(4 * j, 4);
                    packed[j] = (byte)((c[0] & 3) | ((c[1] & 3) << 2) | ((c[2] & 3) << 4) | (c[3] << 6));
                }
                break;
            default:
                // +1 -> 1, -1 -> 0: the sign bit of the code, inverted.
                for (int j = 0; j < whole; j++)
                {
                    var c = codes.Slice(8 * j, 8);
                    int b = 0;
                    for (int k = 0; k < 8; k++) b |= (~c[k] >> 7 & 1) << k;
                    packed[j] = (byte)b;
                }
                break;
        }
        // A short last byte: the remaining values, the rest of its bits zero.
        int bits = format.Bits(), perByte = format.ValuesPerByte();
        if (whole < packed.Length)
        {
            int last = 0;
            for (int i = whole * perByte; i < codes.Length; i++)
            {
                int field = format == StorageFormat.Binary ? (codes[i] + 1) >> 1 : codes[i] & ((1 << bits) - 1);
                last |= field << ((i - whole * perByte) * bits);
            }
            packed[whole] = (byte)last;
        }
    }

    /// <summary>The code at <paramref name="index"/> of a packed buffer.</summary>
    public static int Unpack(StorageFormat format, ReadOnlySpan<byte> packed, long index)
    {
        int bits = format.Bits(), perByte = format.ValuesPerByte();
        int field = (packed[(int)(index / perByte)] >> (int)(index % perByte * bits)) & ((1 << bits) - 1);
        return Decode(format, field);
    }

    /// <summary>
    /// The values of every byte: row <c>v</c> of the <c>[256, ValuesPerByte]</c> table holds the codes packed in
    /// byte <c>v</c>, as floats. Gathering rows of it by the packed bytes unpacks a whole tensor in one op.
    /// </summary>
    public static float[] LookupTable(StorageFormat format)
    {
        int bits = format.Bits(), perByte = format.ValuesPerByte(), mask = (1 << bits) - 1;
        var table = new float[256 * perByte];
        for (int v = 0; v < 256; v++)
            for (int k = 0; k < perByte; k++)
                table[v * perByte + k] = Decode(format, (v >> (k * bits)) & mask);
        return table;
    }

    private static int Decode(StorageFormat format, int field) => format switch
    {
        StorageFormat.Binary => field == 1 ? 1 : -1,
        StorageFormat.Int8 => (sbyte)field,
        StorageFormat.UInt8 or StorageFormat.UInt4 => field,
        // Sign-extend the field's top bit.
        _ => field - ((field >> (format.Bits() - 1)) << format.Bits()),
    };
}
