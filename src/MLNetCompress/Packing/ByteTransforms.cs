using System.Buffers.Binary;

namespace MLNetCompress.Packing;

/// <summary>
/// Reversible transforms that make tensor bytes compress better: byte-plane shuffle (all first bytes of the elements,
/// then all second bytes…: float exponents and sign bytes line up and repeat) and, for integers, differences of
/// consecutive values (sorted sparse indices become small numbers).
/// </summary>
internal static class ByteTransforms
{
    /// <summary>Writes <paramref name="source"/> (elements of <paramref name="size"/> bytes) shuffled into <paramref name="destination"/>.</summary>
    public static void Shuffle(ReadOnlySpan<byte> source, Span<byte> destination, int size)
    {
        int n = source.Length / size;
        for (int b = 0; b < size; b++)
        {
            var plane = destination.Slice(b * n, n);
            for (int i = 0; i < n; i++) plane[i] = source[i * size + b];
        }
    }

    /// <summary>Inverse of <see cref="Shuffle"/>.</summary>
    public static void Unshuffle(ReadOnlySpan<byte> source, Span<byte> destination, int size)
    {
        int n = source.Length / size;
        for (int b = 0; b < size; b++)
        {
            var plane = source.Slice(b * n, n);
            for (int i = 0; i < n; i++) destination[i * size + b] = plane[i];
        }
    }

    /// <summary>Replaces little-endian integers of <paramref name="size"/> bytes (2, 4 or 8) by their differences, wrapping.</summary>
    public static void Delta(Span<byte> data, int size)
    {
        ulong previous = 0;
        for (int at = 0; at + size <= data.Length; at += size)
        {
            ulong v = Read(data[at..], size);
            Write(data[at..], size, v - previous);
            previous = v;
        }
    }

    /// <summary>Inverse of <see cref="Delta"/>.</summary>
    public static void Undelta(Span<byte> data, int size)
    {
        ulong previous = 0;
        for (int at = 0; at + size <= data.Length; at += size)
        {
            previous += Read(data[at..], size);
            Write(data[at..], size, previous);
        }
    }

    private static ulong Read(ReadOnlySpan<byte> s, int size) => size switch
    {
        2 => BinaryPrimitives.ReadUInt16LittleEndian(s),
        4 => BinaryPrimitives.ReadUInt32LittleEndian(s),
        _ => BinaryPrimitives.ReadUInt64LittleEndian(s),
    };

    // Truncation to the element width makes the wrap-around arithmetic exact for every width.
    private static void Write(Span<byte> s, int size, ulong v)
    {
        switch (size)
        {
            case 2: BinaryPrimitives.WriteUInt16LittleEndian(s, (ushort)v); break;
            case 4: BinaryPrimitives.WriteUInt32LittleEndian(s, (uint)v); break;
            default: BinaryPrimitives.WriteUInt64LittleEndian(s, v); break;
        }
    }
}
