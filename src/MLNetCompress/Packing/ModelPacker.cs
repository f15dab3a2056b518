using System.Buffers.Binary;
using System.IO.Compression;
using System.Security.Cryptography;

namespace MLNetCompress.Packing;

/// <summary>Options of <see cref="ModelPacker"/>.</summary>
public sealed record PackOptions
{
    /// <summary>Brotli quality, 0–11. 11, the default, is the smallest and the slowest (ResNet18's 64 MB of floats took about
    /// 6 minutes on two shared cores); lower qualities are much faster and somewhat larger.</summary>
    public int Quality { get; init; } = 11;

    /// <summary>Brotli window, log2 of bytes, 10–24.</summary>
    public int Window { get; init; } = 24;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (Quality is < 0 or > 11) throw new ArgumentException($"Quality is {Quality}; it must be 0 to 11.", nameof(Quality));
        if (Window is < 10 or > 24) throw new ArgumentException($"Window is {Window}; it must be 10 to 24.", nameof(Window));
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
/// byte-plane shuffled (integers delta-coded first) — each Brotli-compressed, behind a header with the original
/// length and its SHA-256. <see cref="PackedModel"/> restores the exact original bytes.
/// </summary>
/// <remarks>
/// Layout, little-endian: "MLCZ", version (1 byte), 3 zero bytes, original length (u64), SHA-256 (32 bytes),
/// stream count (1 byte), then per stream its raw and compressed lengths (u64 each), then the compressed streams
/// in order: table, skeleton, bytes1, bytes2, bytes4, bytes8. The table is varints: the count, then per payload the
/// gap since the previous payload's end, its length, and a byte of element size | delta flag &lt;&lt; 4.
/// </remarks>
public static class ModelPacker
{
    internal static ReadOnlySpan<byte> Magic => "MLCZ"u8;
    internal const byte Version = 1;
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
        var compressed = new byte[raw.Length][];
        // Streams are independent: compress them side by side (quality 11 is slow).
        Parallel.For(0, raw.Length, i => compressed[i] = Compress(raw[i], options));

        var output = new MemoryStream();
        output.Write(Magic);
        output.WriteByte(Version);
        output.Write([0, 0, 0]);
        Span<byte> u64 = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(u64, (ulong)model.Length);
        output.Write(u64);
        output.Write(SHA256.HashData(model));
        output.WriteByte((byte)raw.Length);
        for (int i = 0; i < raw.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(u64, (ulong)raw[i].Length);
            output.Write(u64);
            BinaryPrimitives.WriteUInt64LittleEndian(u64, (ulong)compressed[i].Length);
            output.Write(u64);
        }
        foreach (var c in compressed) output.Write(c);
        var streams = Enumerable.Range(0, raw.Length).Select(i => new PackedStream(StreamNames[i], raw[i].Length, compressed[i].Length)).ToList();
        return new PackResult(output.ToArray(), model.Length, ranges.Count, streams);
    }

    /// <summary>Packs the model file <paramref name="inputPath"/> into <paramref name="outputPath"/> and returns the sizes.</summary>
    public static PackResult PackFile(string inputPath, string outputPath, PackOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(inputPath);
        ArgumentNullException.ThrowIfNull(outputPath);
        var result = Pack(File.ReadAllBytes(inputPath), options);
        File.WriteAllBytes(outputPath, result.Packed);
        return result;
    }

    internal static int SizeSlot(int elementSize) => elementSize switch { 1 => 0, 2 => 1, 4 => 2, 8 => 3, _ => -1 };

    private static byte[] Compress(byte[] data, PackOptions options)
    {
        if (data.Length == 0) return [];
        var buffer = new byte[BrotliEncoder.GetMaxCompressedLength(data.Length)];
        if (!BrotliEncoder.TryCompress(data, buffer, out int written, options.Quality, options.Window))
            throw new InvalidOperationException("Brotli could not compress a stream into its maximum compressed size.");
        return buffer.AsSpan(0, written).ToArray();
    }

    private static void WriteVarint(Stream s, ulong v)
    {
        while (v >= 0x80) { s.WriteByte((byte)(v | 0x80)); v >>= 7; }
        s.WriteByte((byte)v);
    }
}
