using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace MLNetCompress.Tests.Data;

/// <summary>Data files written byte by byte in the tests: gzipped IDX, .npy, PNG.</summary>
internal static class DataTestFiles
{
    /// <summary>An IDX file: big-endian magic and dims, then the bytes; gzipped when asked.</summary>
    public static byte[] Idx(int magic, int[] dims, byte[] data, bool gzip = true, int? truncateTo = null)
    {
        var raw = new MemoryStream();
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, magic);
        raw.Write(word);
        foreach (var d in dims)
        {
            BinaryPrimitives.WriteInt32BigEndian(word, d);
            raw.Write(word);
        }
        raw.Write(data);
        var bytes = raw.ToArray();
        if (truncateTo is int t) bytes = bytes[..t];
        if (!gzip) return bytes;
        var packed = new MemoryStream();
        using (var gz = new GZipStream(packed, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(bytes);
        return packed.ToArray();
    }

    /// <summary>Writes a Fashion-MNIST-style folder: images [n,h,w] with pixel (i,y,x) = (i*7 + y*3 + x) % 256, labels i % 10.</summary>
    public static string FashionFolder(string dir, string prefix, int n, int h = 28, int w = 28, int? imageBytesTruncate = null)
    {
        Directory.CreateDirectory(dir);
        var pixels = new byte[n * h * w];
        for (var i = 0; i < n; i++)
            for (var y = 0; y < h; y++)
                for (var x = 0; x < w; x++)
                    pixels[(i * h + y) * w + x] = (byte)((i * 7 + y * 3 + x) % 256);
        var labels = new byte[n];
        for (var i = 0; i < n; i++) labels[i] = (byte)(i % 10);
        File.WriteAllBytes(Path.Combine(dir, $"{prefix}-images-idx3-ubyte.gz"), Idx(2051, [n, h, w], pixels, truncateTo: imageBytesTruncate));
        File.WriteAllBytes(Path.Combine(dir, $"{prefix}-labels-idx1-ubyte.gz"), Idx(2049, [n], labels));
        return dir;
    }

    /// <summary>An .npy file with a hand-written header dict; version 1 (u16 length) or 2 (u32 length).</summary>
    public static byte[] Npy(string dict, byte[] payload, int major = 1)
    {
        var prefixLength = major == 1 ? 10 : 12;
        var total = prefixLength + dict.Length + 1;
        var padded = (total + 63) / 64 * 64;
        var header = dict + new string(' ', padded - total) + "\n";
        var ms = new MemoryStream();
        ms.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)major, 0]);
        Span<byte> len = stackalloc byte[4];
        if (major == 1)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)header.Length);
            ms.Write(len[..2]);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(len, (uint)header.Length);
            ms.Write(len);
        }
        ms.Write(Encoding.ASCII.GetBytes(header));
        ms.Write(payload);
        return ms.ToArray();
    }

    public static byte[] Floats(params float[] values)
    {
        var b = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(i * 4), values[i]);
        return b;
    }

    public static byte[] Doubles(params double[] values)
    {
        var b = new byte[values.Length * 8];
        for (var i = 0; i < values.Length; i++) BinaryPrimitives.WriteDoubleLittleEndian(b.AsSpan(i * 8), values[i]);
        return b;
    }

    public static byte[] Int64s(params long[] values)
    {
        var b = new byte[values.Length * 8];
        for (var i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(i * 8), values[i]);
        return b;
    }

    public static byte[] Int32s(params int[] values)
    {
        var b = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(i * 4), values[i]);
        return b;
    }

    /// <summary>An 8-bit RGB PNG (color type 2, filter 0 on every row), pixel (x,y) = pick(x,y).</summary>
    public static byte[] Png(int width, int height, Func<int, int, (byte R, byte G, byte B)> pick)
    {
        var scan = new byte[height * (1 + width * 3)];
        for (var y = 0; y < height; y++)
        {
            var o = y * (1 + width * 3);
            for (var x = 0; x < width; x++)
            {
                var (r, g, b) = pick(x, y);
                scan[o + 1 + x * 3] = r;
                scan[o + 2 + x * 3] = g;
                scan[o + 3 + x * 3] = b;
            }
        }
        var z = new MemoryStream();
        using (var zs = new ZLibStream(z, CompressionLevel.Fastest, leaveOpen: true)) zs.Write(scan);
        var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // truecolor RGB
        Chunk(png, "IHDR", ihdr);
        Chunk(png, "IDAT", z.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        s.Write(word);
        var typed = new byte[4 + data.Length];
        Encoding.ASCII.GetBytes(type, typed);
        data.CopyTo(typed, 4);
        s.Write(typed);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32(typed));
        s.Write(word);
    }

    private static uint Crc32(byte[] data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }

    /// <summary>A fresh temp folder.</summary>
    public static string TempDir(string name) => MLNetCompress.Testing.RealModels.TempDir(name);
}
