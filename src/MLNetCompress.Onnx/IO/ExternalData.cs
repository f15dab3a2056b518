using Google.Protobuf;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Onnx;

/// <summary>
/// External tensor data: reading it into memory (with the location kept inside the model's folder and
/// offset/length checked against the file) and moving large tensors out to a data file on write.
/// </summary>
internal static class ExternalData
{
    // Which tensors came from an external file at load (tensor -> location), so inspect can say where weights live.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<TensorProto, string> origin = new();

    /// <summary>The external file a tensor was read from, or null if it was inline.</summary>
    internal static string? OriginOf(TensorProto t) => origin.TryGetValue(t, out var l) ? l : null;

    /// <summary>Every tensor of the model, in the main graph, subgraphs, Constant nodes and sparse initializers.</summary>
    internal static IEnumerable<TensorProto> AllTensors(ModelProto model)
    {
        foreach (var t in GraphTensors(model.Graph)) yield return t;
        foreach (var f in model.Functions)
            foreach (var n in f.Node)
                foreach (var t in AttributeTensors(n)) yield return t;
    }

    private static IEnumerable<TensorProto> GraphTensors(GraphProto g)
    {
        foreach (var t in g.Initializer) yield return t;
        foreach (var s in g.SparseInitializer)
        {
            if (s.Values is not null) yield return s.Values;
            if (s.Indices is not null) yield return s.Indices;
        }
        foreach (var n in g.Node)
            foreach (var t in AttributeTensors(n)) yield return t;
    }

    private static IEnumerable<TensorProto> AttributeTensors(NodeProto n)
    {
        foreach (var a in n.Attribute)
        {
            if (a.T is not null) yield return a.T;
            foreach (var t in a.Tensors) yield return t;
            if (a.SparseTensor is not null)
            {
                if (a.SparseTensor.Values is not null) yield return a.SparseTensor.Values;
                if (a.SparseTensor.Indices is not null) yield return a.SparseTensor.Indices;
            }
            if (a.G is not null)
                foreach (var t in GraphTensors(a.G)) yield return t;
            foreach (var g in a.Graphs)
                foreach (var t in GraphTensors(g)) yield return t;
        }
    }

    /// <summary>Size of the model's protobuf if every tensor were inline (long: it may pass 2 GiB).</summary>
    internal static long InlineSize(ModelProto model)
    {
        long tensorBytes = 0;
        foreach (var t in AllTensors(model)) tensorBytes += t.RawData.Length;
        // Tensors counted separately so the int-returning CalculateSize cannot overflow on huge models.
        return tensorBytes > int.MaxValue / 2 ? tensorBytes : model.CalculateSize();
    }

    /// <summary>The distinct external data locations a model file names (without loading the data).</summary>
    internal static IEnumerable<string> Locations(string modelPath)
    {
        ModelProto model;
        using (var s = File.OpenRead(modelPath))
            model = OnnxModelIO.Parse(s, Path.GetFileName(modelPath), int.MaxValue, new ModelReadOptions().RecursionLimit);
        return AllTensors(model).Where(t => t.DataLocation == TensorProto.Types.DataLocation.External)
            .Select(t => Entry(t, "location") ?? "").Where(l => l.Length > 0).Distinct().ToList();
    }

    private static string? Entry(TensorProto t, string key) =>
        t.ExternalData.FirstOrDefault(e => e.Key == key)?.Value;

    /// <summary>Reads every external tensor into raw_data, checking location, offset and length.</summary>
    internal static void LoadAll(ModelProto model, ModelReadOptions options, string displayName)
    {
        var external = AllTensors(model).Where(t => t.DataLocation == TensorProto.Types.DataLocation.External).ToList();
        if (external.Count == 0) return;
        if (options.BaseDirectory is null)
            throw new OnnxFormatException($"'{displayName}' keeps tensors in external data files; read it from its file path (or set ModelReadOptions.BaseDirectory) so they can be found.");
        var baseDir = Path.GetFullPath(options.BaseDirectory);
        long total = 0;
        var files = new Dictionary<string, FileStream>(StringComparer.Ordinal);
        try
        {
            foreach (var t in external)
            {
                string location = Entry(t, "location")
                    ?? throw new OnnxFormatException($"tensor '{t.Name}' is marked external but names no location; the model is malformed.");
                string file = ResolveInside(baseDir, location, t.Name);
                if (!files.TryGetValue(file, out var fs))
                {
                    if (!File.Exists(file))
                        throw new OnnxFormatException($"tensor '{t.Name}' keeps its data in '{location}', which does not exist beside the model; copy the data file next to the .onnx file.");
                    fs = File.OpenRead(file);
                    files[file] = fs;
                }
                long offset = ParseLong(Entry(t, "offset"), 0, t.Name, "offset");
                var type = OnnxDataTypes.FromWire(t.DataType);
                long expected = OnnxDataTypes.ByteCount(type, TensorData.ElementCount(t.Dims.ToArray(), t.Name));
                long length = ParseLong(Entry(t, "length"), -1, t.Name, "length");
                if (length < 0) length = fs.Length - offset;
                if (offset < 0 || length < 0 || offset > fs.Length || length > fs.Length - offset)
                    throw new OnnxFormatException($"tensor '{t.Name}' reads {length} bytes at offset {offset} of '{location}', past the end of that {fs.Length}-byte file; the data file is truncated or does not belong to this model.");
                if (length != expected)
                    throw new OnnxFormatException($"tensor '{t.Name}' declares shape [{string.Join(",", t.Dims)}] of {OnnxDataTypes.Name(type)} ({expected} bytes) but its external data holds {length} bytes.");
                total += length;
                if (total > options.MaxExternalDataBytes || length > int.MaxValue)
                    throw new OnnxFormatException($"external data of '{displayName}' passes the {options.MaxExternalDataBytes}-byte limit; raise ModelReadOptions.MaxExternalDataBytes if this model is really that big.");
                var buffer = new byte[length];
                fs.Position = offset;
                fs.ReadExactly(buffer);
                t.RawData = UnsafeByteOperations.UnsafeWrap(buffer);
                origin.AddOrUpdate(t, location);
                t.ExternalData.Clear();
                t.DataLocation = TensorProto.Types.DataLocation.Default;
            }
        }
        finally
        {
            foreach (var fs in files.Values) fs.Dispose();
        }
    }

    /// <summary>
    /// Resolves a location inside the model's folder, rejecting absolute paths, '..' and symbolic links
    /// (the file or any folder on the way) that point out of it.
    /// </summary>
    internal static string ResolveInside(string baseDir, string location, string tensorName)
    {
        if (location.Length == 0)
            throw new OnnxFormatException($"tensor '{tensorName}' names an empty external data location; the model is malformed.");
        if (Path.IsPathRooted(location) || location.Contains(':'))
            throw new OnnxFormatException($"tensor '{tensorName}' names external data at absolute path '{location}'; only paths inside the model's folder are allowed.");
        var parts = location.Split('/', '\\');
        if (parts.Any(p => p == ".."))
            throw new OnnxFormatException($"tensor '{tensorName}' names external data '{location}', which leaves the model's folder ('..'); only paths inside the model's folder are allowed.");
        baseDir = Path.TrimEndingDirectorySeparator(baseDir);
        var root = baseDir + Path.DirectorySeparatorChar;
        var full = Path.GetFullPath(Path.Combine(baseDir, location));
        if (!full.StartsWith(root, StringComparison.Ordinal))
            throw new OnnxFormatException($"tensor '{tensorName}' names external data '{location}' outside the model's folder; only paths inside the model's folder are allowed.");
        // A symbolic link inside the folder, to the file or to a folder on the way, may still point out of it.
        var current = baseDir;
        foreach (var part in parts.Where(p => p.Length > 0 && p != "."))
        {
            current = Path.Combine(current, part);
            var info = new FileInfo(current);
            if (info.LinkTarget is null) continue;
            string? target;
            try { target = info.ResolveLinkTarget(returnFinalTarget: true)?.FullName; }
            catch (IOException) { target = null; } // a cycle of links
            if (target is null || !Path.GetFullPath(target).StartsWith(root, StringComparison.Ordinal))
                throw new OnnxFormatException($"tensor '{tensorName}' names external data '{location}', a link that points outside the model's folder; only files inside the model's folder are allowed.");
        }
        return full;
    }

    private static long ParseLong(string? text, long fallback, string tensorName, string key)
    {
        if (text is null) return fallback;
        if (!long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long v))
            throw new OnnxFormatException($"tensor '{tensorName}' has external data {key} '{text}', which is not a non-negative integer.");
        return v;
    }

    /// <summary>Moves every tensor of at least <paramref name="threshold"/> bytes to <paramref name="tempPath"/>, recorded as <paramref name="location"/>.</summary>
    internal static void MoveToFile(ModelProto model, string tempPath, string location, long threshold)
    {
        using var fs = new FileStream(tempPath, FileMode.CreateNew, FileAccess.Write);
        foreach (var t in AllTensors(model))
        {
            if (t.RawData.Length < threshold) continue;
            // 4 KiB alignment lets readers memory-map each tensor.
            long offset = (fs.Position + 4095) / 4096 * 4096;
            if (offset > fs.Position) fs.Write(new byte[offset - fs.Position]);
            fs.Write(t.RawData.Span);
            t.ExternalData.Clear();
            t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
            t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = t.RawData.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            t.DataLocation = TensorProto.Types.DataLocation.External;
            t.RawData = ByteString.Empty;
        }
        fs.Flush(flushToDisk: true);
    }
}
