using MLNetCompress.Data;
using MLNetCompress.Runtime;

namespace MLNetCompress.ML.Distillation;

/// <summary>How soft labels are generated: the teachers, the output they are read from, the temperature, the
/// ensemble rule, the file form, batching, sharding and the device.</summary>
public sealed record SoftLabelOptions
{
    /// <summary>The teacher .onnx files (one, or several for an ensemble). They must take the same inputs and give
    /// the same number of classes.</summary>
    public required IReadOnlyList<string> Teachers { get; init; }

    /// <summary>The teacher output holding logits or log-probabilities, rows first; null for the first teacher's
    /// first output. Every teacher must have it.</summary>
    public string? OutputName { get; init; }

    /// <summary>The temperature T of softmax(z / T); T &gt; 0, 1 by default.</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>How several teachers' distributions are combined.</summary>
    public SoftLabelCombine Combine { get; init; } = SoftLabelCombine.Arithmetic;

    /// <summary>Write the top-k form with this K (1 ≤ K ≤ C) instead of the dense distribution; null for dense.</summary>
    public int? TopK { get; init; }

    /// <summary>Rows per ONNX Runtime run (a model with a fixed batch size uses its own).</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Generate only this shard of the rows, into <c>OUT.shard-i-of-n.EXT</c>; null for all rows.</summary>
    public SoftLabelShard? Shard { get; init; }

    /// <summary>At most this many rows of the data (before sharding); null for all.</summary>
    public long? MaxRows { get; init; }

    /// <summary>Write the teacher's input, flattened, as the Features column (only when the teacher has a single
    /// float input; otherwise the column is left out and a note says so).</summary>
    public bool IncludeFeatures { get; init; } = true;

    /// <summary>Checkpoint size: a run of more rows writes them in parts of this many rows (each written atomically
    /// into <c>OUT.EXT.parts/</c>) and joins the parts at the end, so a run killed mid-way keeps its finished parts
    /// and a rerun labels only the rest. Null or 0: one write.</summary>
    public long? CheckpointRows { get; init; } = 100_000;

    /// <summary>ONNX Runtime settings: threads, and <see cref="RuntimeOptions.GpuDeviceId"/> to run on CUDA; with
    /// <see cref="RuntimeOptions.FallbackToCpu"/> (the default) a missing CUDA gives a note and the CPU.</summary>
    public RuntimeOptions Runtime { get; init; } = RuntimeOptions.Default;

    /// <summary>Options for reading the data spec (base folder, vocab); the first teacher is its model.</summary>
    public DataSpecOptions? DataOptions { get; init; }
}

/// <summary>Progress of a soft-label run, reported after each batch.</summary>
/// <param name="RowsDone">Rows of this run (shard) labelled so far.</param>
/// <param name="TotalRows">Rows this run will label, when known.</param>
/// <param name="RowsPerSecond">Rows labelled per second since the run started.</param>
public sealed record SoftLabelProgress(long RowsDone, long? TotalRows, double RowsPerSecond);

/// <summary>What a soft-label run did.</summary>
/// <param name="Path">The file written (the shard's own file when sharded).</param>
/// <param name="Info">Its description.</param>
/// <param name="Skipped">True when the file was already complete with the same settings and was kept as it was.</param>
/// <param name="OnGpu">True when the teachers ran on CUDA.</param>
/// <param name="Elapsed">Wall time of the run.</param>
/// <param name="RowsPerSecond">Rows labelled and written per second.</param>
/// <param name="Notes">One-line notes: CUDA fallback, features left out.</param>
public sealed record SoftLabelResult(string Path, SoftLabelInfo Info, bool Skipped, bool OnGpu, TimeSpan Elapsed, double RowsPerSecond, IReadOnlyList<string> Notes);
