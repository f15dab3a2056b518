using System.Buffers.Binary;
using System.IO.Compression;

namespace MLNetCompress.Data;

/// <summary>An IDX file of unsigned bytes (the MNIST / Fashion-MNIST format), gzipped or plain: big-endian
/// magic 0x0000_08_NN (NN = number of dims), then NN big-endian int32 dims, then the bytes row-major.</summary>
public sealed class IdxFile
{
    /// <summary>Magic number of an image file (3 dims: count, rows, columns).</summary>
    public const int ImagesMagic = 2051;

    /// <summary>Magic number of a label file (1 dim: count).</summary>
    public const int LabelsMagic = 2049;

    private IdxFile(string name, int magic, int[] dims, byte[] data)
    {
        Name = name;
        Magic = magic;
        Dims = dims;
        Data = data;
    }

    /// <summary>The file name the data came from (for messages).</summary>
    public string Name { get; }

    /// <summary>The magic number read.</summary>
    public int Magic { get; }

    /// <summary>The dims, the first being the item count.</summary>
    public IReadOnlyList<int> Dims { get; }

    /// <summary>All the values, row-major.</summary>
    public byte[] Data { get; }

    /// <summary>Reads a file, gunzipping it when it starts with the gzip signature.</summary>
    /// <param name="path">The file.</param>
    /// <param name="expectedMagic"><see cref="ImagesMagic"/>, <see cref="LabelsMagic"/>, or null for any unsigned-byte IDX file.</param>
    public static IdxFile Read(string path, int? expectedMagic = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        Stream file;
        try
        {
            file = File.OpenRead(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataSpecException($"cannot open IDX file {path}: {e.Message}", e);
        }
        using (file)
            return Read(file, path, expectedMagic);
    }

    /// <summary>Reads IDX data from a stream (gzipped or plain); <paramref name="name"/> names it in errors.</summary>
    public static IdxFile Read(Stream stream, string name, int? expectedMagic = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(name);
        if (!stream.CanSeek)
        {
            // The gzip sniff needs to look ahead; IDX files are small enough to buffer.
            var copy = new MemoryStream();
            stream.CopyTo(copy);
            copy.Position = 0;
            stream = copy;
        }
        var start = stream.Position;
        Span<byte> sig = stackalloc byte[2];
        var sigRead = stream.ReadAtLeast(sig, sig.Length, throwOnEndOfStream: false);
        stream.Position = start;
        var gz = sigRead == 2 && sig[0] == 0x1f && sig[1] == 0x8b;
        using var source = gz ? new GZipStream(stream, CompressionMode.Decompress, leaveOpen: true) : null;
        try
        {
            return ReadIdx(source ?? stream, name, expectedMagic);
        }
        catch (InvalidDataException e)
        {
            throw new DataSpecException($"IDX file {name} is not valid gzip data: {e.Message}", e);
        }
    }

    private static IdxFile ReadIdx(Stream s, string name, int? expectedMagic)
    {
        Span<byte> head = stackalloc byte[4];
        if (s.ReadAtLeast(head, head.Length, throwOnEndOfStream: false) < 4) throw new DataSpecException($"IDX file {name} is truncated: no 4-byte magic number");
        var magic = BinaryPrimitives.ReadInt32BigEndian(head);
        if (head[0] != 0 || head[1] != 0 || head[2] != 0x08 || head[3] is 0 or > 8)
            throw new DataSpecException($"IDX file {name} has magic {magic}; expected an unsigned-byte IDX file (2051 images, 2049 labels)");
        if (expectedMagic is int want && magic != want)
            throw new DataSpecException($"IDX file {name} has magic {magic} ({Kind(magic)}) where {want} ({Kind(want)}) was expected");
        var dims = new int[head[3]];
        long count = 1;
        for (var i = 0; i < dims.Length; i++)
        {
            if (s.ReadAtLeast(head, head.Length, throwOnEndOfStream: false) < 4) throw new DataSpecException($"IDX file {name} is truncated in its header");
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(head);
            if (dims[i] < 0) throw new DataSpecException($"IDX file {name} has a negative dim {dims[i]}");
            count *= dims[i];
        }
        if (count > Array.MaxLength)
            throw new DataSpecException($"IDX file {name} says [{string.Join(",", dims)}]: {count} bytes is more than one array holds");
        var data = new byte[count];
        var got = s.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
        if (got < count)
            throw new DataSpecException($"IDX file {name} is truncated: its header says [{string.Join(",", dims)}] ({count} bytes) but only {got} bytes follow");
        return new IdxFile(name, magic, dims, data);
    }

    private static string Kind(int magic) => magic switch
    {
        ImagesMagic => "images",
        LabelsMagic => "labels",
        _ => "unknown",
    };
}
