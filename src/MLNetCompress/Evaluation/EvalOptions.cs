using MLNetCompress.Runtime;

namespace MLNetCompress.Evaluation;

/// <summary>How <see cref="ModelComparer"/> evaluates.</summary>
public sealed record EvalOptions
{
    /// <summary>Rows per batch (a model with a fixed batch dim overrides it).</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Evaluate at most this many rows; null for all.</summary>
    public int? MaxRows { get; init; }

    /// <summary>Untimed runs of each model on the first batch before timing starts.</summary>
    public int WarmupRuns { get; init; } = 3;

    /// <summary>When the data gives fewer full batches than this, the first batch is rerun (interleaved) until
    /// each model has this many latency samples.</summary>
    public int MinLatencySamples { get; init; } = 20;

    /// <summary>Runtime for both sessions. The global thread pool (the default) keeps A/B timings fair.</summary>
    public RuntimeOptions Runtime { get; init; } = RuntimeOptions.Default;

    /// <summary>Size on disk of the baseline including external data, when the caller knows it; null for the
    /// size of the bytes or file given.</summary>
    public long? BaselineBytes { get; init; }

    /// <summary>Size on disk of the candidate including external data, when the caller knows it.</summary>
    public long? CandidateBytes { get; init; }

    /// <summary>Receives one-line notes (CUDA fallback, thread pool).</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>Progress of an evaluation.</summary>
/// <param name="Phase">"warmup", "compare" or "latency".</param>
/// <param name="RowsDone">Rows compared so far.</param>
/// <param name="TotalRows">Rows to compare, when known.</param>
public sealed record EvalProgress(string Phase, long RowsDone, long? TotalRows);

/// <summary>The result of comparing a candidate model with its baseline on one data feed.</summary>
/// <param name="Data">The feed's description.</param>
/// <param name="Rows">Rows evaluated.</param>
/// <param name="BatchSize">Rows per batch used.</param>
/// <param name="BaselineBytes">Size of the baseline model.</param>
/// <param name="CandidateBytes">Size of the candidate model.</param>
/// <param name="Outputs">Fidelity per output.</param>
/// <param name="BaselineMedianMs">Median milliseconds per batch of the baseline.</param>
/// <param name="CandidateMedianMs">Median milliseconds per batch of the candidate.</param>
/// <param name="LatencySamples">Timed runs of each model.</param>
/// <param name="PeakWorkingSetBytes">The process's peak working set at the end of the run.</param>
/// <param name="OnGpu">Whether the sessions ran on CUDA.</param>
/// <param name="Elapsed">Wall time of the whole evaluation.</param>
public sealed record EvalReport(
    string Data,
    long Rows,
    int BatchSize,
    long BaselineBytes,
    long CandidateBytes,
    IReadOnlyList<OutputComparison> Outputs,
    double BaselineMedianMs,
    double CandidateMedianMs,
    int LatencySamples,
    long PeakWorkingSetBytes,
    bool OnGpu,
    TimeSpan Elapsed)
{
    /// <summary>Candidate bytes over baseline bytes.</summary>
    public double SizeRatio => BaselineBytes == 0 ? double.NaN : (double)CandidateBytes / BaselineBytes;

    /// <summary>Candidate median latency over baseline median latency (below 1: faster).</summary>
    public double LatencyRatio => BaselineMedianMs == 0 ? double.NaN : CandidateMedianMs / BaselineMedianMs;
}
