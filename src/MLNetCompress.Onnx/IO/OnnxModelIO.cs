using Google.Protobuf;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Onnx;

/// <summary>
/// Reads and writes ONNX models: size and recursion limits on read, external data resolved (and kept
/// inside the model's folder), atomic writes, external data written automatically past 2 GiB.
/// </summary>
public static class OnnxModelIO
{
    /// <summary>Reads a model file; external data is resolved against the file's folder.</summary>
    internal static ModelProto Read(string path, ModelReadOptions? options = null)
    {
        options ??= new ModelReadOptions();
        if (!File.Exists(path))
            throw new OnnxFormatException($"model file '{path}' does not exist.");
        var info = new FileInfo(path);
        if (info.Length == 0)
            throw new OnnxFormatException($"model file '{path}' is empty; pass an .onnx file.");
        if (info.Length > options.MaxModelBytes)
            throw new OnnxFormatException($"model file '{path}' is {info.Length} bytes, over the {options.MaxModelBytes}-byte limit of one protobuf; store large tensors as external data.");
        using var stream = File.OpenRead(path);
        var baseDir = options.BaseDirectory ?? Path.GetDirectoryName(Path.GetFullPath(path))!;
        return Read(stream, Path.GetFileName(path), options with { BaseDirectory = baseDir });
    }

    /// <summary>Reads a model from bytes. External data needs <see cref="ModelReadOptions.BaseDirectory"/>.</summary>
    internal static ModelProto Read(byte[] bytes, ModelReadOptions? options = null, string displayName = "model bytes")
    {
        using var stream = new MemoryStream(bytes, writable: false);
        return Read(stream, displayName, options ?? new ModelReadOptions());
    }

    /// <summary>Reads a model from a stream. External data needs <see cref="ModelReadOptions.BaseDirectory"/>.</summary>
    internal static ModelProto Read(Stream stream, string displayName, ModelReadOptions options)
    {
        ModelProto model;
        try
        {
            int sizeLimit = (int)Math.Min(options.MaxModelBytes, int.MaxValue);
            var input = CodedInputStream.CreateWithLimits(stream, sizeLimit, options.RecursionLimit);
            model = ModelProto.Parser.ParseFrom(input);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new OnnxFormatException($"'{displayName}' is not a readable ONNX model ({FirstLine(e.Message)}); the file may be truncated or not an .onnx file.", e);
        }
        CheckIsModel(model, displayName);
        ExternalData.LoadAll(model, options, displayName);
        return model;
    }

    /// <summary>Parses a protobuf that must be a model (no external data resolution).</summary>
    internal static ModelProto ParseBytes(byte[] bytes, string displayName = "model bytes") =>
        Read(bytes, new ModelReadOptions(), displayName);

    private static void CheckIsModel(ModelProto model, string displayName)
    {
        // Random bytes can parse as protobuf with unknown fields; a model has an IR version and a graph.
        if (model.IrVersion <= 0 || model.Graph is null)
            throw new OnnxFormatException($"'{displayName}' parses as protobuf but is not an ONNX model (no ir_version or no graph); pass an .onnx model file.");
        if (model.IrVersion >= 3 && model.OpsetImport.Count == 0)
            throw new OnnxFormatException($"'{displayName}' declares IR version {model.IrVersion} but no opset_import; the model is malformed.");
    }

    /// <summary>The serialized protobuf of a model whose tensors are all inline.</summary>
    internal static byte[] ToBytes(ModelProto model)
    {
        long size = ExternalData.InlineSize(model);
        if (size > int.MaxValue)
            throw new OnnxFormatException($"the model holds {size} bytes of tensors, past protobuf's 2 GiB limit; write it to a file so large tensors go to external data.");
        return model.ToByteArray();
    }

    /// <summary>
    /// Writes a model atomically (temp file, then rename) and never touches another file: external
    /// data, when used, goes to <c>NAME.data</c> beside it, written the same way. Same model and
    /// options give identical bytes.
    /// </summary>
    internal static void Write(ModelProto model, string path, ModelWriteOptions? options = null)
    {
        options ??= new ModelWriteOptions();
        var fullPath = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(fullPath)!;
        Directory.CreateDirectory(dir);
        bool external = options.ExternalData switch
        {
            ExternalDataMode.Always => true,
            ExternalDataMode.Never => false,
            _ => ExternalData.InlineSize(model) > options.InlineLimitBytes,
        };
        var toWrite = model;
        string? dataTemp = null;
        string dataName = Path.GetFileName(fullPath) + ".data";
        if (external)
        {
            toWrite = model.Clone();
            dataTemp = Path.Combine(dir, $".{dataName}.{Guid.NewGuid():N}.tmp");
            ExternalData.MoveToFile(toWrite, dataTemp, dataName, options.ExternalThresholdBytes);
        }
        var temp = Path.Combine(dir, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                toWrite.WriteTo(fs);
                fs.Flush(flushToDisk: true);
            }
            if (dataTemp is not null)
                File.Move(dataTemp, Path.Combine(dir, dataName), overwrite: true);
            File.Move(temp, fullPath, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
            if (dataTemp is not null && File.Exists(dataTemp)) File.Delete(dataTemp);
        }
    }

    /// <summary>Bytes a model takes on disk: the .onnx file plus every distinct external data file it names.</summary>
    public static long SizeOnDisk(string path)
    {
        long total = new FileInfo(path).Length;
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        foreach (var location in ExternalData.Locations(path))
        {
            var file = Path.Combine(dir, location);
            if (File.Exists(file)) total += new FileInfo(file).Length;
        }
        return total;
    }

    internal static string FirstLine(string s)
    {
        int i = s.IndexOfAny(['\r', '\n']);
        return (i < 0 ? s : s[..i]).TrimEnd('.');
    }
}
