namespace MLNetCompress.Compression;

/// <summary>The steps of a compression run, in order.</summary>
public enum CompressionStage
{
    /// <summary>Checking the paths and reading the input model.</summary>
    Load,
    /// <summary>Running the passes.</summary>
    Passes,
    /// <summary>Loading the result in ONNX Runtime and comparing it with the original on probe rows.</summary>
    Verify,
    /// <summary>Writing the output file.</summary>
    Write,
}

/// <summary>Progress of a compression run.</summary>
/// <param name="Stage">The current step.</param>
/// <param name="Step">What is happening, e.g. <c>int8-weight-storage: quantize</c>.</param>
/// <param name="Done">Units done within the step.</param>
/// <param name="Total">Units in the step (0 when not counted).</param>
public sealed record CompressionProgress(CompressionStage Stage, string Step, int Done, int Total);
