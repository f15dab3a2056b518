using MLNetCompress.Runtime;

namespace MLNetCompress.Evaluation;

/// <summary>A model to evaluate: serialized bytes (with the folder of its external data, if any) or a file.</summary>
public sealed class ModelSource
{
    private ModelSource(string name, byte[]? bytes, string? path, string? externalDataFolder, long sizeBytes)
    {
        Name = name;
        Bytes = bytes;
        Path = path;
        ExternalDataFolder = externalDataFolder;
        SizeBytes = sizeBytes;
    }

    /// <summary>What to call the model in messages.</summary>
    public string Name { get; }

    /// <summary>The serialized model, when given as bytes.</summary>
    public byte[]? Bytes { get; }

    /// <summary>The model file, when given as a path.</summary>
    public string? Path { get; }

    /// <summary>Folder of the external-data files of a model given as bytes, or null.</summary>
    public string? ExternalDataFolder { get; }

    /// <summary>Bytes of the serialized model (the byte array's length or the file's size; external data not included).</summary>
    public long SizeBytes { get; }

    /// <summary>A model given as bytes.</summary>
    public static ModelSource FromBytes(byte[] bytes, string name = "model", string? externalDataFolder = null)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        return new ModelSource(name, bytes, null, externalDataFolder, bytes.LongLength);
    }

    /// <summary>A model file; its external data is found beside it.</summary>
    public static ModelSource FromFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"model file {path} does not exist", path);
        return new ModelSource(System.IO.Path.GetFileName(path), null, info.FullName, null, info.Length);
    }

    /// <summary>Loads the model into a runner.</summary>
    /// <exception cref="OrtRuntimeException">The model does not load.</exception>
    public ModelRunner Load(RuntimeOptions runtime, Action<string>? log = null, IReadOnlyList<string>? outputNames = null)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        if (Bytes is not null)
            return ModelRunner.Load(Bytes, ExternalDataFolder is null ? runtime : runtime with { ExternalDataFolder = ExternalDataFolder }, log, outputNames);
        return ModelRunner.Load(Path!, runtime, log, outputNames);
    }
}
