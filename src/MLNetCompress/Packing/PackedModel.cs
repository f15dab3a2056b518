using System.Buffers.Binary;
using System.IO.Compression;
using System.Security.Cryptography;

namespace MLNetCompress.Packing;

/// <summary>
/// Reads the .mlcz container written by <see cref="ModelPacker"/> back into the exact original ONNX bytes, ready for
/// <c>new InferenceSession(bytes)</c>. Every length is checked against the file and the declared original size
/// before anything is allocated or decompressed, and the result must match the stored SHA-256.
/// </summary>
public static class PackedModel
{
    /// <summary>The ONNX bytes of the packed model at <paramref name="path"/>.</summary>
    /// <exception cref="PackedModelException">The file is not a packed model, or is damaged (one-line message).</exception>
    public static byte[] Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Unpack(File.ReadAllBytes(path));
    }

    /// <summary>True when the bytes start with the container's magic.</summary>
    public static bool IsPacked(ReadOnlySpan<byte> data) => data.StartsWith(ModelPacker.Magic);

    /// <summary>The ONNX bytes of a packed model held in memory.</summary>
    /// <exception cref="PackedModelException">The bytes are not a packed model, or are damaged (one-line message).</exception>
    public static byte[] Unpack(ReadOnlySpan<byte> packed)
    {
        if (!IsPacked(packed)) throw new PackedModelException("not a packed model: the file does not start with 'MLCZ'.");
        if (packed.Length < ModelPacker.FixedHeader) throw new PackedModelException($"truncated: {packed.Length} bytes is shorter than the header.");
        if (packed[4] != ModelPacker.Version) throw new PackedModelException($"packed with format version {packed[4]}; this build reads version {ModelPacker.Version}.");
        ulong declared = BinaryPrimitives.ReadUInt64LittleEndian(packed[8..]);
        if (declared > (ulong)Array.MaxLength) throw new PackedModelException($"damaged header: an original size of {declared} bytes is more than a model can have.");
        long original = (long)declared;
        var hash = packed.Slice(16, 32);
        int count = packed[48];
        if (count != ModelPacker.StreamNames.Length) throw new PackedModelException($"damaged header: {count} streams, expected {ModelPacker.StreamNames.Length}.");
        int headerEnd = ModelPacker.FixedHeader + count * 16;
        if (packed.Length < headerEnd) throw new PackedModelException($"truncated: {packed.Length} bytes is shorter than the header ({headerEnd}).");

        var rawLengths = new long[count];
        var starts = new long[count];
        var lengths = new long[count];
        long position = headerEnd;
        for (int i = 0; i < count; i++)
        {
            ulong raw = BinaryPrimitives.ReadUInt64LittleEndian(packed[(ModelPacker.FixedHeader + 16 * i)..]);
            ulong size = BinaryPrimitives.ReadUInt64LittleEndian(packed[(ModelPacker.FixedHeader + 16 * i + 8)..]);
            // The table has at most 21 bytes per payload and every other stream is part of the original bytes.
            ulong limit = i == 0 ? 21 * declared + 16 : declared;
            if (raw > limit) throw new PackedModelException($"damaged header: stream '{ModelPacker.StreamNames[i]}' claims {raw} bytes, more than the model can hold.");
            if (size > (ulong)(packed.Length - position)) throw new PackedModelException($"truncated: stream '{ModelPacker.StreamNames[i]}' runs past the end of the file.");
            if ((raw == 0) != (size == 0)) throw new PackedModelException($"damaged header: stream '{ModelPacker.StreamNames[i]}' has {raw} bytes packed into {size}.");
            rawLengths[i] = (long)raw;
            starts[i] = position;
            lengths[i] = (long)size;
            position += (long)size;
        }
        if (position != packed.Length) throw new PackedModelException($"damaged: {packed.Length - position} unexpected bytes after the last stream.");
        long total = 0;
        for (int i = 1; i < count; i++) total += rawLengths[i];
        if (total != original) throw new PackedModelException($"damaged header: the streams hold {total} bytes, the model {original}.");

        var streams = new byte[count][];
        for (int i = 0; i < count; i++)
            streams[i] = Decompress(packed.Slice((int)starts[i], (int)lengths[i]), rawLengths[i], ModelPacker.StreamNames[i]);

        var model = Assemble(streams, original);
        if (!SHA256.HashData(model).AsSpan().SequenceEqual(hash))
            throw new PackedModelException("damaged: the unpacked model does not match the SHA-256 recorded when it was packed.");
        return model;
    }

    private static byte[] Decompress(ReadOnlySpan<byte> source, long rawLength, string name)
    {
        var output = new byte[rawLength];
        if (rawLength == 0) return output;
        // A destination of exactly the declared size: a stream that decodes to more or less is damaged.
        using var decoder = new BrotliDecoder();
        var status = decoder.Decompress(source, output, out int consumed, out int written);
        if (status != System.Buffers.OperationStatus.Done || consumed != source.Length || written != rawLength)
            throw new PackedModelException($"damaged: stream '{name}' does not decode to its declared {rawLength} bytes.");
        return output;
    }

    private static byte[] Assemble(byte[][] streams, long original)
    {
        var table = streams[0];
        var skeleton = streams[1];
        var model = new byte[original];
        var cursors = new int[4];
        int t = 0, s = 0;
        long at = 0;
        ulong ranges = ReadVarint(table, ref t);
        for (ulong k = 0; k < ranges; k++)
        {
            ulong gap = ReadVarint(table, ref t);
            ulong length = ReadVarint(table, ref t);
            if (t >= table.Length) throw new PackedModelException("damaged: the payload table is truncated.");
            byte code = table[t++];
            int size = code & 0x0F;
            bool delta = (code & 0x10) != 0;
            int slot = ModelPacker.SizeSlot(size);
            if (slot < 0 || (code & ~0x1F) != 0) throw new PackedModelException($"damaged: payload {k} has an unknown coding {code}.");
            if (gap > (ulong)(skeleton.Length - s) || length > (ulong)(streams[2 + slot].Length - cursors[slot]) || length % (ulong)size != 0)
                throw new PackedModelException($"damaged: payload {k} runs past the end of its stream.");
            skeleton.AsSpan(s, (int)gap).CopyTo(model.AsSpan((int)at));
            s += (int)gap;
            at += (long)gap;
            var target = model.AsSpan((int)at, (int)length);
            var source = streams[2 + slot].AsSpan(cursors[slot], (int)length);
            if (size > 1) ByteTransforms.Unshuffle(source, target, size);
            else source.CopyTo(target);
            if (delta) ByteTransforms.Undelta(target, size);
            cursors[slot] += (int)length;
            at += (long)length;
        }
        if (t != table.Length) throw new PackedModelException("damaged: unexpected bytes after the payload table.");
        if (skeleton.Length - s != original - at) throw new PackedModelException("damaged: the skeleton and the payloads do not add up to the model.");
        skeleton.AsSpan(s).CopyTo(model.AsSpan((int)at));
        for (int i = 0; i < 4; i++)
            if (cursors[i] != streams[2 + i].Length) throw new PackedModelException($"damaged: stream '{ModelPacker.StreamNames[2 + i]}' has bytes no payload uses.");
        return model;
    }

    private static ulong ReadVarint(byte[] data, ref int at)
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (at >= data.Length) throw new PackedModelException("damaged: the payload table is truncated.");
            byte b = data[at++];
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return result;
        }
        throw new PackedModelException("damaged: a number in the payload table is too long.");
    }
}
