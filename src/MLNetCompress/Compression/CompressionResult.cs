using MLNetCompress.Evaluation;
using MLNetCompress.Onnx.Passes;

namespace MLNetCompress.Compression;

/// <summary>What a compression run did and how faithful the written model is.</summary>
/// <param name="InputPath">The input model file, or null when it was given as bytes.</param>
/// <param name="OutputPath">The file written (full path).</param>
/// <param name="BytesBefore">Size of the input on disk with its external data (or the length of the bytes given).</param>
/// <param name="BytesAfter">Size of the output on disk with its external data.</param>
/// <param name="Passes">What each pass did and skipped, in order.</param>
/// <param name="Layers">One row per weight a pass changed.</param>
/// <param name="Verification">How the output compared with the input on the probe rows.</param>
/// <param name="Elapsed">Wall time of the whole run.</param>
public sealed record CompressionResult(
    string? InputPath,
    string OutputPath,
    long BytesBefore,
    long BytesAfter,
    IReadOnlyList<PassResult> Passes,
    IReadOnlyList<LayerChange> Layers,
    VerificationSummary Verification,
    TimeSpan Elapsed)
{
    /// <summary>Bytes before over bytes after (4 means four times smaller).</summary>
    public double CompressionRatio => BytesAfter == 0 ? double.NaN : (double)BytesBefore / BytesAfter;

    /// <summary>True when any pass changed the model.</summary>
    public bool Modified => Passes.Any(p => p.Modified);

    /// <summary>The model's size after each stage (the original, each recipe step, a packed container), first row the
    /// original; empty when the front end did not measure stages (the report then shows the original and the written file).</summary>
    public IReadOnlyList<Reporting.SizeStage> Stages { get; init; } = [];

    /// <summary>What the engine did beyond the passes, one line each (the verification gate's recovery of a quantized model).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
}

/// <summary>The verifier's figures for the written model, over all its outputs.</summary>
/// <param name="ProbeRows">Probe rows compared.</param>
/// <param name="MinCosine">Lowest per-row cosine similarity of any output.</param>
/// <param name="MeanCosine">Mean per-row cosine similarity over the outputs.</param>
/// <param name="MaxAbsDiff">Largest absolute difference of any output element.</param>
/// <param name="Outputs">The figures per output.</param>
/// <param name="Summary">The verifier's one-line verdict.</param>
public sealed record VerificationSummary(
    long ProbeRows,
    double MinCosine,
    double MeanCosine,
    double MaxAbsDiff,
    IReadOnlyList<OutputComparison> Outputs,
    string Summary)
{
    internal static VerificationSummary From(VerifyResult r) => new(
        r.Rows,
        r.Outputs.Count == 0 ? double.NaN : r.Outputs.Min(o => o.MinCosine),
        r.Outputs.Count == 0 ? double.NaN : r.Outputs.Average(o => o.MeanCosine),
        r.Outputs.Count == 0 ? double.NaN : r.Outputs.Max(o => o.MaxAbsDiff),
        r.Outputs,
        r.Reason);
}
