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

    /// <summary>The ONNX bytes of a packed model held in memory (container version 2, or version 1 written before chunking).</summary>
    /// <exception cref="PackedModelException">The bytes are not a packed model, or are damaged (one-line message).</exception>
    public static byte[] Unpack(ReadOnlySpan<byte> packed)
    {
        if (!IsPacked(packed)) throw new PackedModelException("not a packed model: the file does not start with 'MLCZ'.");
        if (packed.Length < ModelPacker.FixedHeader) throw new PackedModelException($"truncated: {packed.Length} bytes is shorter than the header.");
        byte version = packed[4];
        if (version is not (ModelPacker.Version or ModelPacker.Version1))
            throw new PackedModelException($"packed with format version {version}; this build reads versions {ModelPacker.Version1} and {ModelPacker.Version}.");
        ulong declared = BinaryPrimitives.ReadUInt64LittleEndian(packed[8..]);
        if (declared > (ulong)Array.MaxLength) throw new PackedModelException($"damaged header: an original size of {declared} bytes is more than a model can have.");
        long original = (long)declared;
        var hash = packed.Slice(16, 32);
        int count = packed[48];
        if (count != ModelPacker.StreamNames.Length) throw new PackedModelException($"damaged header: {count} streams, expected {ModelPacker.StreamNames.Length}.");
        // Version 1 has one Brotli stream per stream: read it as a single chunk of any size.
        int chunkAt = ModelPacker.FixedHeader;
        long chunkSize = long.MaxValue;
        if (version == ModelPacker.Version)
        {
            if (packed.Length < chunkAt + 4) throw new PackedModelException($"truncated: {packed.Length} bytes is shorter than the header.");
            chunkSize = BinaryPrimitives.ReadUInt32LittleEndian(packed[chunkAt..]);
            if (chunkSize is < PackOptions.MinChunkBytes or > 1 << 30) throw new PackedModelException($"damaged header: a chunk size of {chunkSize} bytes.");
            chunkAt += 4;
        }
        int streamTable = chunkAt;
        if (packed.Length < streamTable + count * 16) throw new PackedModelException($"truncated: {packed.Length} bytes is shorter than the header ({streamTable + count * 16}).");

        var rawLengths = new long[count];
        var packedLengths = new long[count];
        long chunkCount = 0;
        for (int i = 0; i < count; i++)
        {
            ulong raw = BinaryPrimitives.ReadUInt64LittleEndian(packed[(streamTable + 16 * i)..]);
            ulong size = BinaryPrimitives.ReadUInt64LittleEndian(packed[(streamTable + 16 * i + 8)..]);
            // The table has at most 21 bytes per payload and every other stream is part of the original bytes.
            ulong limit = i == 0 ? 21 * declared + 16 : declared;
            if (raw > limit) throw new PackedModelException($"damaged header: stream '{ModelPacker.StreamNames[i]}' claims {raw} bytes, more than the model can hold.");
            if (size > (ulong)packed.Length) throw new PackedModelException($"truncated: stream '{ModelPacker.StreamNames[i]}' runs past the end of the file.");
            if ((raw == 0) != (size == 0)) throw new PackedModelException($"damaged header: stream '{ModelPacker.StreamNames[i]}' has {raw} bytes packed into {size}.");
            rawLengths[i] = (long)raw;
            packedLengths[i] = (long)size;
            chunkCount += raw == 0 ? 0 : ((long)raw - 1) / chunkSize + 1;
        }
        long total = 0;
        for (int i = 1; i < count; i++) total += rawLengths[i];
        if (total != original) throw new PackedModelException($"damaged header: the streams hold {total} bytes, the model {original}.");

        // Where each chunk's compressed bytes are and where they decode to; checked against the stream lengths and the file.
        long lengthsAt = streamTable + count * 16L;
        long position = lengthsAt + (version == ModelPacker.Version ? 4 * chunkCount : 0);
        if (position > packed.Length) throw new PackedModelException($"truncated: {packed.Length} bytes is shorter than the chunk table.");
        var chunks = new List<Chunk>((int)chunkCount);
        for (int i = 0; i < count; i++)
        {
            long sum = 0;
            int index = 0;
            for (long o = 0; o < rawLengths[i]; o += chunkSize, index++)
            {
                long length = version == ModelPacker.Version
                    ? BinaryPrimitives.ReadUInt32LittleEndian(packed[(int)(lengthsAt + 4L * chunks.Count)..])
                    : packedLengths[i];
                if (length == 0 || length > packed.Length - position)
                    throw new PackedModelException($"truncated: stream '{ModelPacker.StreamNames[i]}' chunk {index} runs past the end of the file.");
                chunks.Add(new Chunk(i, index, o, Math.Min(chunkSize, rawLengths[i] - o), position, length));
                position += length;
                sum += length;
            }
            if (sum != packedLengths[i]) throw new PackedModelException($"damaged header: stream '{ModelPacker.StreamNames[i]}' declares {packedLengths[i]} packed bytes, its chunks {sum}.");
        }
        if (position != packed.Length) throw new PackedModelException($"damaged: {packed.Length - position} unexpected bytes after the last stream.");

        var streams = new byte[count][];
        for (int i = 0; i < count; i++) streams[i] = new byte[rawLengths[i]];
        // Chunks decode independently: side by side, each into its own slice of its stream.
        var source = packed.ToArray();
        try
        {
            Parallel.For(0, chunks.Count, k =>
            {
                var c = chunks[k];
                Decompress(source.AsSpan((int)c.Start, (int)c.PackedLength), streams[c.Stream].AsSpan((int)c.Offset, (int)c.RawLength),
                    ModelPacker.StreamNames[c.Stream], c.Index);
            });
        }
        catch (AggregateException e) when (e.InnerExceptions.OfType<PackedModelException>().FirstOrDefault() is { } first)
        {
            throw new PackedModelException(first.Message, first);
        }

        var model = Assemble(streams, original);
        if (!SHA256.HashData(model).AsSpan().SequenceEqual(hash))
            throw new PackedModelException("damaged: the unpacked model does not match the SHA-256 recorded when it was packed.");
        return model;
    }

    /// <summary>One independently compressed piece of a stream.</summary>
    private readonly record struct Chunk(int Stream, int Index, long Offset, long RawLength, long Start, long PackedLength);

    private static void Decompress(ReadOnlySpan<byte> source, Span<byte> output, string name, int index)
    {
        // A destination of exactly the declared size: a chunk that decodes to more or less is damaged.
        using var decoder = new BrotliDecoder();
        var status = decoder.Decompress(source, output, out int consumed, out int written);
        if (status != System.Buffers.OperationStatus.Done || consumed != source.Length || written != output.Length)
            throw new PackedModelException($"damaged: stream '{name}' chunk {index} does not decode to its declared {output.Length} bytes.");
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
