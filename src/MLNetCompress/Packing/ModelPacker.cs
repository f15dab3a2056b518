using System.Buffers.Binary;
using System.Numerics;
using System.IO.Compression;
using System.Security.Cryptography;

namespace MLNetCompress.Packing;

/// <summary>Options of <see cref="ModelPacker"/>.</summary>
public sealed record PackOptions
{
    /// <summary>Brotli quality, 0–11. The default, 10, packs ResNet18 clustered to 8 bits within 0.1% of 11's size in
    /// about 60% of its time; 9 and below are much faster but about 5% larger.</summary>
    public int Quality { get; init; } = 10;

    /// <summary>Brotli window, log2 of bytes, 10–24; capped at the chunk size (no match can reach further).</summary>
    public int Window { get; init; } = 24;

    /// <summary>Each stream is cut into chunks of this many bytes, compressed independently and side by side, one per core
    /// (1 MiB to 1 GiB; default 1 MiB). Larger chunks find a few more repeats; smaller ones spread over more cores.</summary>
    public int ChunkBytes { get; init; } = DefaultChunkBytes;

    /// <summary>The default <see cref="ChunkBytes"/>: 1 MiB.</summary>
    public const int DefaultChunkBytes = 1 << 20;

    /// <summary>The smallest <see cref="ChunkBytes"/>: 1 MiB.</summary>
    public const int MinChunkBytes = 1 << 20;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (Quality is < 0 or > 11) throw new ArgumentException($"Quality is {Quality}; it must be 0 to 11.", nameof(Quality));
        if (Window is < 10 or > 24) throw new ArgumentException($"Window is {Window}; it must be 10 to 24.", nameof(Window));
        if (ChunkBytes is < MinChunkBytes or > 1 << 30) throw new ArgumentException($"ChunkBytes is {ChunkBytes}; it must be 1 MiB (1048576) to 1 GiB.", nameof(ChunkBytes));
    }
}

/// <summary>One stream of a packed model: its name and its sizes before and after Brotli.</summary>
/// <param name="Name">skeleton, table, or bytes1/bytes2/bytes4/bytes8 (tensor payloads by element size).</param>
/// <param name="RawBytes">Bytes before compression.</param>
/// <param name="PackedBytes">Bytes after compression.</param>
public sealed record PackedStream(string Name, long RawBytes, long PackedBytes);

/// <summary>What <see cref="ModelPacker.Pack(ReadOnlySpan{byte}, PackOptions?)"/> produced.</summary>
/// <param name="Packed">The container bytes.</param>
/// <param name="OriginalBytes">The model's size.</param>
/// <param name="Tensors">Tensor payloads coded apart from the protobuf skeleton.</param>
/// <param name="Streams">The streams, in container order.</param>
public sealed record PackResult(byte[] Packed, long OriginalBytes, int Tensors, IReadOnlyList<PackedStream> Streams)
{
    /// <summary>The container's size.</summary>
    public long PackedBytes => Packed.LongLength;

    /// <summary>Original size over packed size.</summary>
    public double Ratio => PackedBytes == 0 ? 0 : (double)OriginalBytes / PackedBytes;
}

/// <summary>
/// Writes the .mlcz container: an ONNX model split into streams that compress well apart — the protobuf skeleton
/// with the tensor payloads cut out, a table of where they were, and the payloads grouped by element size,
/// byte-plane shuffled (integers delta-coded first) — each cut into fixed-size chunks that are Brotli-compressed
/// independently, in parallel, behind a header with the original length and its SHA-256. <see cref="PackedModel"/>
/// restores the exact original bytes.
/// </summary>
/// <remarks>
/// Layout (version 2), little-endian: "MLCZ", version (1 byte), 3 zero bytes, original length (u64), SHA-256 (32 bytes),
/// stream count (1 byte), chunk size (u32), then per stream its raw and compressed lengths (u64 each), then per stream
/// the compressed length of each of its ceil(raw / chunk size) chunks (u32 each), then the compressed chunks in order:
/// table, skeleton, bytes1, bytes2, bytes4, bytes8. The table is varints: the count, then per payload the gap since
/// the previous payload's end, its length, and a byte of element size | delta flag &lt;&lt; 4. Version 1 (still read)
/// had no chunk size and no chunk lengths: each stream was one Brotli stream.
/// </remarks>
public static class ModelPacker
{
    internal static ReadOnlySpan<byte> Magic => "MLCZ"u8;
    internal const byte Version = 2;
    internal const byte Version1 = 1;
    internal static readonly string[] StreamNames = ["table", "skeleton", "bytes1", "bytes2", "bytes4", "bytes8"];
    internal const int FixedHeader = 4 + 4 + 8 + 32 + 1;

    /// <summary>Packs a serialized ONNX model (any bytes are accepted; bytes that are not a model stay whole in the skeleton).</summary>
    public static PackResult Pack(ReadOnlySpan<byte> model, PackOptions? options = null)
    {
        options ??= new PackOptions();
        options.Validate();
        var ranges = OnnxStreamSplitter.Find(model);
        var table = new MemoryStream();
        WriteVarint(table, (ulong)ranges.Count);
        var skeleton = new MemoryStream(model.Length);
        var payloads = new MemoryStream[4];
        for (int i = 0; i < 4; i++) payloads[i] = new MemoryStream();
        long at = 0;
        foreach (var r in ranges)
        {
            skeleton.Write(model.Slice((int)at, (int)(r.Offset - at)));
            WriteVarint(table, (ulong)(r.Offset - at));
            WriteVarint(table, (ulong)r.Length);
            table.WriteByte((byte)(r.ElementSize | (r.Delta ? 0x10 : 0)));
            var bytes = model.Slice((int)r.Offset, (int)r.Length).ToArray();
            if (r.Delta) ByteTransforms.Delta(bytes, r.ElementSize);
            var shuffled = new byte[bytes.Length];
            if (r.ElementSize > 1) ByteTransforms.Shuffle(bytes, shuffled, r.ElementSize);
            else bytes.CopyTo(shuffled, 0);
            payloads[SizeSlot(r.ElementSize)].Write(shuffled);
            at = r.Offset + r.Length;
        }
        skeleton.Write(model[(int)at..]);

        byte[][] raw = [table.ToArray(), skeleton.ToArray(), .. payloads.Select(p => p.ToArray())];
        // Every chunk of every stream is independent: compress them all side by side (quality 10 and 11 are slow).
        int chunk = options.ChunkBytes;
        var chunks = new List<(int Stream, int Offset, int Length)>();
        for (int i = 0; i < raw.Length; i++)
            for (long o = 0; o < raw[i].Length; o += chunk) chunks.Add((i, (int)o, (int)Math.Min(chunk, raw[i].Length - o)));
        var compressed = new byte[chunks.Count][];
        // Roughly largest first (Parallel.For hands out indices mostly in order), so small chunks fill the tail.
        var order = Enumerable.Range(0, chunks.Count).OrderByDescending(k => chunks[k].Length).ToArray();
        Parallel.For(0, order.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, n =>
        {
            var (stream, offset, length) = chunks[order[n]];
            compressed[order[n]] = Compress(raw[stream].AsSpan(offset, length), options);
        });

        var packedLengths = new long[raw.Length];
        for (int k = 0; k < chunks.Count; k++) packedLengths[chunks[k].Stream] += compressed[k].Length;
        var output = new MemoryStream();
        output.Write(Magic);
        output.WriteByte(Version);
        output.Write([0, 0, 0]);
        Span<byte> u64 = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(u64, (ulong)model.Length);
        output.Write(u64);
        output.Write(SHA256.HashData(model));
        output.WriteByte((byte)raw.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(u64, (uint)chunk);
        output.Write(u64[..4]);
        for (int i = 0; i < raw.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(u64, (ulong)raw[i].Length);
            output.Write(u64);
            BinaryPrimitives.WriteUInt64LittleEndian(u64, (ulong)packedLengths[i]);
            output.Write(u64);
        }
        foreach (var c in compressed)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(u64, (uint)c.Length);
            output.Write(u64[..4]);
        }
        foreach (var c in compressed) output.Write(c);
        var streams = Enumerable.Range(0, raw.Length).Select(i => new PackedStream(StreamNames[i], raw[i].Length, packedLengths[i])).ToList();
        return new PackResult(output.ToArray(), model.Length, ranges.Count, streams);
    }

    /// <summary>Packs the model file <paramref name="inputPath"/> into <paramref name="outputPath"/> and returns the sizes.
    /// The container is unpacked in memory first and written only when it gives back the exact model bytes.</summary>
    /// <exception cref="PackedModelException">The container did not round-trip (nothing was written).</exception>
    public static PackResult PackFile(string inputPath, string outputPath, PackOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(inputPath);
        ArgumentNullException.ThrowIfNull(outputPath);
        var model = File.ReadAllBytes(inputPath);
        var result = Pack(model, options);
        if (!PackedModel.Unpack(result.Packed).AsSpan().SequenceEqual(model))
            throw new PackedModelException($"packing '{inputPath}' did not give back the exact model bytes; nothing was written.");
        File.WriteAllBytes(outputPath, result.Packed);
        return result;
    }

    internal static int SizeSlot(int elementSize) => elementSize switch { 1 => 0, 2 => 1, 4 => 2, 8 => 3, _ => -1 };

    private static byte[] Compress(ReadOnlySpan<byte> data, PackOptions options)
    {
        var buffer = new byte[BrotliEncoder.GetMaxCompressedLength(data.Length)];
        // A window of the chunk's size (rounded up to a power of two) sees every match and needs less memory per core.
        int window = Math.Clamp(BitOperations.Log2((uint)data.Length - 1) + 1, 10, options.Window);
        if (!BrotliEncoder.TryCompress(data, buffer, out int written, options.Quality, window))
            throw new InvalidOperationException("Brotli could not compress a stream into its maximum compressed size.");
        return buffer.AsSpan(0, written).ToArray();
    }

    private static void WriteVarint(Stream s, ulong v)
    {
        while (v >= 0x80) { s.WriteByte((byte)(v | 0x80)); v >>= 7; }
        s.WriteByte((byte)v);
    }
}
