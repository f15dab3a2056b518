using System.Buffers.Binary;
using System.Globalization;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Text;

namespace MLNetCompress.Data;

/// <summary>Element types an .npy file may hold here (little-endian, C order).</summary>
public enum NpyDType
{
    /// <summary>'&lt;f4'.</summary>
    Float32,

    /// <summary>'&lt;f8'.</summary>
    Float64,

    /// <summary>'&lt;i4'.</summary>
    Int32,

    /// <summary>'&lt;i8'.</summary>
    Int64,
}

/// <summary>A NumPy .npy array (format versions 1, 2 and 3): little-endian float32, float64, int32 or int64
/// in C order. The first axis is rows. The payload is kept as raw bytes and converted per row range.</summary>
public sealed class NpyArray
{
    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    private readonly byte[] _data;
    private readonly long[] _shape;

    private NpyArray(string name, NpyDType dtype, long[] shape, byte[] data)
    {
        Name = name;
        DType = dtype;
        _shape = shape;
        _data = data;
    }

    /// <summary>The file name the array came from (for messages).</summary>
    public string Name { get; }

    /// <summary>The element type.</summary>
    public NpyDType DType { get; }

    /// <summary>The shape; the first axis is rows.</summary>
    public IReadOnlyList<long> Shape => _shape;

    /// <summary>Rows: the first dim.</summary>
    public long Rows => _shape[0];

    /// <summary>Values in one row (the product of the dims after the first).</summary>
    public long RowLength
    {
        get
        {
            long n = 1;
            for (var i = 1; i < _shape.Length; i++) n *= _shape[i];
            return n;
        }
    }

    /// <summary>Bytes per element.</summary>
    public int ItemSize => DType is NpyDType.Float32 or NpyDType.Int32 ? 4 : 8;

    /// <summary>Reads an .npy file.</summary>
    public static NpyArray Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        Stream file;
        try
        {
            file = File.OpenRead(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataSpecException($"cannot open npy file {path}: {e.Message}", e);
        }
        using (file)
            return Read(file, path);
    }

    /// <summary>Reads .npy data from a stream; <paramref name="name"/> names it in errors.</summary>
    public static NpyArray Read(Stream stream, string name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(name);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("npy reading assumes a little-endian machine");
        Span<byte> pre = stackalloc byte[8];
        if (stream.ReadAtLeast(pre, pre.Length, throwOnEndOfStream: false) < 8 || !pre[..6].SequenceEqual(Magic))
            throw new DataSpecException($"npy file {name} does not start with the \\x93NUMPY magic");
        var major = pre[6];
        int headerLength;
        if (major == 1)
        {
            Span<byte> len = stackalloc byte[2];
            if (stream.ReadAtLeast(len, len.Length, throwOnEndOfStream: false) < 2) throw new DataSpecException($"npy file {name} is truncated in its header");
            headerLength = BinaryPrimitives.ReadUInt16LittleEndian(len);
        }
        else if (major is 2 or 3)
        {
            Span<byte> len = stackalloc byte[4];
            if (stream.ReadAtLeast(len, len.Length, throwOnEndOfStream: false) < 4) throw new DataSpecException($"npy file {name} is truncated in its header");
            var l = BinaryPrimitives.ReadUInt32LittleEndian(len);
            if (l > 1 << 24) throw new DataSpecException($"npy file {name} claims a {l}-byte header");
            headerLength = (int)l;
        }
        else
        {
            throw new DataSpecException($"npy file {name} is format version {major}.{pre[7]}; versions 1, 2 and 3 are read");
        }

        var headerBytes = new byte[headerLength];
        if (stream.ReadAtLeast(headerBytes, headerBytes.Length, throwOnEndOfStream: false) < headerLength) throw new DataSpecException($"npy file {name} is truncated in its header");
        // Versions 1 and 2 store the header as latin-1, version 3 as UTF-8; the keys and values read here are ASCII.
        var header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(headerBytes);
        var (descr, fortran, shape) = ParseHeader(header, name);
        if (fortran) throw new DataSpecException($"npy file {name} is in Fortran order; save it in C order (numpy.ascontiguousarray)");
        var dtype = descr switch
        {
            "<f4" or "=f4" => NpyDType.Float32,
            "<f8" or "=f8" => NpyDType.Float64,
            "<i4" or "=i4" => NpyDType.Int32,
            "<i8" or "=i8" => NpyDType.Int64,
            _ => throw new DataSpecException($"npy file {name} has dtype '{descr}'; supported are little-endian <f4, <f8, <i4, <i8"),
        };
        if (shape.Length == 0) throw new DataSpecException($"npy file {name} holds a scalar; the first axis must be rows");

        long count = 1;
        foreach (var d in shape) count = checked(count * d);
        var itemSize = dtype is NpyDType.Float32 or NpyDType.Int32 ? 4 : 8;
        var bytes = checked(count * itemSize);
        if (bytes > Array.MaxLength) throw new DataSpecException($"npy file {name} holds {bytes} bytes, more than one array holds");
        var data = new byte[bytes];
        var got = stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
        if (got < bytes)
            throw new DataSpecException($"npy file {name} is truncated: shape {FormatTuple(shape)} {descr} needs {bytes} bytes of data, found {got}");
        return new NpyArray(name, dtype, shape, data);
    }

    /// <summary>Converts rows [<paramref name="startRow"/>, +<paramref name="rowCount"/>) to float32 into <paramref name="destination"/>.</summary>
    public void CopyRows(long startRow, int rowCount, Span<float> destination)
    {
        var n = checked((int)(rowCount * RowLength));
        if (destination.Length < n) throw new ArgumentException($"destination holds {destination.Length} values, {n} needed", nameof(destination));
        var src = Slice(startRow, rowCount);
        var dst = destination[..n];
        switch (DType)
        {
            case NpyDType.Float32: MemoryMarshal.Cast<byte, float>(src).CopyTo(dst); break;
            case NpyDType.Float64: TensorPrimitives.ConvertTruncating<double, float>(MemoryMarshal.Cast<byte, double>(src), dst); break;
            case NpyDType.Int32: TensorPrimitives.ConvertTruncating<int, float>(MemoryMarshal.Cast<byte, int>(src), dst); break;
            case NpyDType.Int64: TensorPrimitives.ConvertTruncating<long, float>(MemoryMarshal.Cast<byte, long>(src), dst); break;
        }
    }

    /// <summary>Converts rows to int64 into <paramref name="destination"/>; the array must hold integers.</summary>
    public void CopyRows(long startRow, int rowCount, Span<long> destination)
    {
        var n = checked((int)(rowCount * RowLength));
        if (destination.Length < n) throw new ArgumentException($"destination holds {destination.Length} values, {n} needed", nameof(destination));
        var src = Slice(startRow, rowCount);
        var dst = destination[..n];
        switch (DType)
        {
            case NpyDType.Int64: MemoryMarshal.Cast<byte, long>(src).CopyTo(dst); break;
            case NpyDType.Int32: TensorPrimitives.ConvertChecked<int, long>(MemoryMarshal.Cast<byte, int>(src), dst); break;
            default: throw new InvalidOperationException($"npy file {Name} holds {DType}, not integers");
        }
    }

    /// <summary>Writes a float32 array as .npy version 1.0 (C order), e.g. soft labels.</summary>
    public static void Write(Stream stream, ReadOnlySpan<float> data, ReadOnlySpan<long> shape) =>
        Write(stream, "<f4", MemoryMarshal.AsBytes(data), data.Length, shape);

    /// <summary>Writes an int64 array as .npy version 1.0 (C order).</summary>
    public static void Write(Stream stream, ReadOnlySpan<long> data, ReadOnlySpan<long> shape) =>
        Write(stream, "<i8", MemoryMarshal.AsBytes(data), data.Length, shape);

    private static void Write(Stream stream, string descr, ReadOnlySpan<byte> payload, int count, ReadOnlySpan<long> shape)
    {
        ArgumentNullException.ThrowIfNull(stream);
        long expected = 1;
        foreach (var d in shape) expected *= d;
        if (expected != count) throw new ArgumentException($"shape {FormatTuple(shape.ToArray())} holds {expected} values, data has {count}", nameof(shape));
        var dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {FormatTuple(shape.ToArray())}, }}";
        // The header (magic + version + length + dict + '\n') is padded with spaces to a multiple of 64 bytes.
        var total = 10 + dict.Length + 1;
        var padded = (total + 63) / 64 * 64;
        var text = dict + new string(' ', padded - total) + "\n";
        if (text.Length > ushort.MaxValue) throw new ArgumentException("shape too long for an npy 1.0 header", nameof(shape));
        Span<byte> pre = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, 0, 0];
        BinaryPrimitives.WriteUInt16LittleEndian(pre[8..], (ushort)text.Length);
        stream.Write(pre);
        stream.Write(Encoding.ASCII.GetBytes(text));
        stream.Write(payload);
    }

    private ReadOnlySpan<byte> Slice(long startRow, int rowCount)
    {
        if (startRow < 0 || rowCount < 0 || startRow + rowCount > Rows)
            throw new ArgumentOutOfRangeException(nameof(startRow), $"rows {startRow}..{startRow + rowCount} are outside 0..{Rows}");
        var rowBytes = RowLength * ItemSize;
        return _data.AsSpan(checked((int)(startRow * rowBytes)), checked((int)(rowCount * rowBytes)));
    }

    private static (string Descr, bool Fortran, long[] Shape) ParseHeader(string header, string name)
    {
        var descr = ReadValue(header, "descr", name);
        if (descr.Length < 2 || descr[0] != '\'' && descr[0] != '"')
            throw new DataSpecException($"npy file {name} has a descr that is not a plain dtype string: {descr}");
        descr = descr.Trim('\'', '"');

        var fortranText = ReadValue(header, "fortran_order", name);
        var fortran = fortranText switch
        {
            "True" => true,
            "False" => false,
            _ => throw new DataSpecException($"npy file {name} has fortran_order '{fortranText}'"),
        };

        var shapeText = ReadValue(header, "shape", name);
        if (!shapeText.StartsWith('(') || !shapeText.EndsWith(')'))
            throw new DataSpecException($"npy file {name} has a malformed shape '{shapeText}'");
        var parts = shapeText[1..^1].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var shape = new long[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            var p = parts[i].TrimEnd('L'); // Python 2 wrote long literals as 3L.
            if (!long.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out shape[i]))
                throw new DataSpecException($"npy file {name} has a malformed shape '{shapeText}'");
        }
        return (descr, fortran, shape);
    }

    // Reads the Python literal after 'key': in the header dict, up to the next top-level ',' or '}'.
    private static string ReadValue(string header, string key, string name)
    {
        var at = header.IndexOf($"'{key}'", StringComparison.Ordinal);
        if (at < 0) at = header.IndexOf($"\"{key}\"", StringComparison.Ordinal);
        if (at < 0) throw new DataSpecException($"npy file {name} has no '{key}' in its header");
        var colon = header.IndexOf(':', at + key.Length + 2);
        if (colon < 0) throw new DataSpecException($"npy file {name} has a malformed header");
        var i = colon + 1;
        while (i < header.Length && char.IsWhiteSpace(header[i])) i++;
        var start = i;
        var depth = 0;
        char quote = '\0';
        for (; i < header.Length; i++)
        {
            var c = header[i];
            if (quote != '\0') { if (c == quote) quote = '\0'; continue; }
            if (c is '\'' or '"') quote = c;
            else if (c is '(' or '[') depth++;
            else if (c is ')' or ']') depth--;
            else if (depth == 0 && c is ',' or '}') break;
        }
        return header[start..i].Trim();
    }

    private static string FormatTuple(long[] shape) =>
        shape.Length == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape)})";
}
