namespace MLNetCompress.Onnx;

/// <summary>Limits and choices for reading a model. The defaults suit any model ONNX can store.</summary>
public sealed record ModelReadOptions
{
    /// <summary>Largest accepted protobuf, in bytes. Protobuf itself caps a message at 2 GiB.</summary>
    public long MaxModelBytes { get; init; } = int.MaxValue;

    /// <summary>Deepest nesting of messages accepted (subgraphs nest); stops hostile recursion. At most 100, Google.Protobuf's own limit.</summary>
    public int RecursionLimit { get; init; } = 100;

    /// <summary>Largest total of external data accepted, in bytes.</summary>
    public long MaxExternalDataBytes { get; init; } = 64L << 30;

    /// <summary>Folder external data locations are resolved against; defaults to the model's folder.</summary>
    public string? BaseDirectory { get; init; }
}

/// <summary>How a model's tensors go to disk.</summary>
public enum ExternalDataMode
{
    /// <summary>Inline, unless the protobuf would pass the 2 GiB limit; then large tensors go to a data file.</summary>
    Auto,
    /// <summary>Always inline (fails for models past 2 GiB).</summary>
    Never,
    /// <summary>Tensors of at least <see cref="ModelWriteOptions.ExternalThresholdBytes"/> go to a data file.</summary>
    Always,
}

/// <summary>Choices for writing a model.</summary>
public sealed record ModelWriteOptions
{
    /// <summary>Where tensors go; see <see cref="ExternalDataMode"/>.</summary>
    public ExternalDataMode ExternalData { get; init; } = ExternalDataMode.Auto;

    /// <summary>Tensors at least this big are moved to the data file when external data is used.</summary>
    public long ExternalThresholdBytes { get; init; } = 1024;

    /// <summary>Size past which <see cref="ExternalDataMode.Auto"/> switches to external data (below 2 GiB for headroom).</summary>
    public long InlineLimitBytes { get; init; } = 2_000_000_000;
}
