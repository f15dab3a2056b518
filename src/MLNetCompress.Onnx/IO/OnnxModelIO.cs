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
        // The whole file, then a parse from memory: Google.Protobuf parsing a stream buffers every large
        // bytes field twice (3.5x the file for ResNet18), parsing a buffer copies it once.
        var bytes = File.ReadAllBytes(path);
        var baseDir = options.BaseDirectory ?? Path.GetDirectoryName(Path.GetFullPath(path))!;
        return Read(bytes, options with { BaseDirectory = baseDir }, Path.GetFileName(path));
    }

    /// <summary>Reads a model from bytes. External data needs <see cref="ModelReadOptions.BaseDirectory"/>.</summary>
    internal static ModelProto Read(byte[] bytes, ModelReadOptions? options = null, string displayName = "model bytes")
    {
        options ??= new ModelReadOptions();
        if (bytes.LongLength > options.MaxModelBytes)
            throw new OnnxFormatException($"'{displayName}' is {bytes.LongLength} bytes, over the {options.MaxModelBytes}-byte limit; raise ModelReadOptions.MaxModelBytes or store large tensors as external data.");
        ModelProto model;
        if (options.RecursionLimit >= ProtobufDefaultRecursionLimit)
            model = ParseBuffer(bytes, displayName);
        else
        {
            using var stream = new MemoryStream(bytes, writable: false);
            model = Parse(stream, displayName, (int)Math.Min(options.MaxModelBytes, int.MaxValue), options.RecursionLimit);
        }
        return Finish(model, displayName, options);
    }

    /// <summary>Reads a model from a stream. External data needs <see cref="ModelReadOptions.BaseDirectory"/>.</summary>
    internal static ModelProto Read(Stream stream, string displayName, ModelReadOptions options)
    {
        if (stream.CanSeek && stream.Length - stream.Position <= options.MaxModelBytes)
        {
            var bytes = new byte[stream.Length - stream.Position];
            stream.ReadExactly(bytes);
            return Read(bytes, options, displayName);
        }
        var model = Parse(stream, displayName, (int)Math.Min(options.MaxModelBytes, int.MaxValue), options.RecursionLimit);
        return Finish(model, displayName, options);
    }

    private static ModelProto Finish(ModelProto model, string displayName, ModelReadOptions options)
    {
        CheckIsModel(model, displayName);
        ExternalData.LoadAll(model, options, displayName);
        return model;
    }

    // Google.Protobuf's buffer parser enforces this nesting limit itself; a lower limit needs the stream parser.
    private const int ProtobufDefaultRecursionLimit = 100;

    private static ModelProto ParseBuffer(byte[] bytes, string displayName)
    {
        try
        {
            return ModelProto.Parser.ParseFrom(new System.Buffers.ReadOnlySequence<byte>(bytes));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new OnnxFormatException($"'{displayName}' is not a readable ONNX model ({FirstLine(e.Message)}); the file may be truncated or not an .onnx file.", e);
        }
    }

    /// <summary>
    /// Parses a ModelProto under size and nesting limits. Google.Protobuf reports bad bytes (bad tags,
    /// truncation, invalid UTF-8, nesting past the limit) as InvalidProtocolBufferException; anything
    /// else it throws while parsing is a format problem too, and all of it becomes one
    /// <see cref="OnnxFormatException"/>. A failing stream's own IOException passes through.
    /// </summary>
    internal static ModelProto Parse(Stream stream, string displayName, int sizeLimit, int recursionLimit)
    {
        try
        {
            var input = CodedInputStream.CreateWithLimits(stream, sizeLimit, recursionLimit);
            return ModelProto.Parser.ParseFrom(input);
        }
        catch (Exception e) when (e is not OutOfMemoryException && (e is InvalidProtocolBufferException || e is not IOException))
        {
            throw new OnnxFormatException($"'{displayName}' is not a readable ONNX model ({FirstLine(e.Message)}); the file may be truncated or not an .onnx file.", e);
        }
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
        return WithoutUnreadIr3Initializers(model).ToByteArray();
    }

    /// <summary>
    /// ONNX Runtime refuses an IR 3 model holding an initializer that no node reads and no graph input
    /// declares ("Graph ctor should have created NodeArg for initializer"), and an edit that moves a
    /// weight's last reader elsewhere leaves exactly that. Such initializers mean nothing, so what is
    /// written leaves them out (the model in memory is not changed).
    /// </summary>
    internal static ModelProto WithoutUnreadIr3Initializers(ModelProto model)
    {
        if (model.IrVersion >= 4 || model.Graph is null || !HasUnread(model.Graph)) return model;
        var copy = model.Clone(); // tensor payloads are immutable ByteStrings: shared, not copied
        Prune(copy.Graph);
        return copy;

        static List<TensorProto> Unread(GraphProto g)
        {
            var read = new HashSet<string>(g.Node.SelectMany(GraphScope.ReadsOf), StringComparer.Ordinal);
            read.UnionWith(g.Output.Select(o => o.Name));
            read.UnionWith(g.Input.Select(i => i.Name));
            return g.Initializer.Where(t => !read.Contains(t.Name)).ToList();
        }
        static IEnumerable<GraphProto> Subgraphs(GraphProto g) => g.Node.SelectMany(GraphScope.SubgraphsOf).Select(s => s.Graph);
        static bool HasUnread(GraphProto g) => Unread(g).Count > 0 || Subgraphs(g).Any(HasUnread);
        static void Prune(GraphProto g)
        {
            foreach (var t in Unread(g)) g.Initializer.Remove(t);
            foreach (var s in Subgraphs(g)) Prune(s);
        }
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
        var toWrite = WithoutUnreadIr3Initializers(model);
        string? dataTemp = null;
        string dataName = Path.GetFileName(fullPath) + ".data";
        if (external)
        {
            toWrite = toWrite.Clone();
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
