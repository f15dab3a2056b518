using MLNetCompress.Data;
using MLNetCompress.Runtime;

namespace MLNetCompress.Quantization.Budget;

/// <summary>The metric an accuracy budget is measured on.</summary>
public enum BudgetMetric
{
    /// <summary>Accuracy when the eval data has labels and the model outputs class scores, else top-1 agreement for
    /// class scores, else cosine.</summary>
    Auto,

    /// <summary>Top-1 accuracy against the eval data's labels, in percent; the drop is in percentage points.</summary>
    Accuracy,

    /// <summary>Share of rows whose top-1 class agrees with the float model's, in percent (the float model scores 100);
    /// the drop is in percentage points.</summary>
    Agreement,

    /// <summary>Mean cosine similarity of each output row with the float model's (the float model scores 1), averaged
    /// over the outputs; the drop is in absolute units (0.01 allows a mean cosine of 0.99).</summary>
    Cosine,

    /// <summary>The lowest per-row cosine of any output with the float model's (the float model scores 1): what the
    /// verification gate checks; the drop is in absolute units (0.01 allows a lowest cosine of 0.99).</summary>
    MinCosine,
}

/// <summary>What the search does to the most sensitive layers.</summary>
public enum BudgetRemedy
{
    /// <summary>Keeps them float.</summary>
    KeepFloat,

    /// <summary>Stores their weights as uint8 (<see cref="KernelSafety.PairSumGuard.Uint8Weights"/>): full 8-bit weights
    /// instead of the pair-safe guard's wider scales, on ONNX Runtime's U8U8 kernels (slower than U8S8 with VNNI, still
    /// int8). The first remedy the verification gate's recovery tries.</summary>
    Uint8Weights,
}

/// <summary>How the search walks the layers ranked by sensitivity.</summary>
public enum BudgetSearchStrategy
{
    /// <summary>Keeps the 1, 2, 3, … most sensitive layers in float until the budget holds: the fewest float layers
    /// even when the drop is not monotonic in their number, at up to one try per layer.</summary>
    Greedy,

    /// <summary>Binary search for the smallest number of most-sensitive layers kept in float: about log2(layers) tries,
    /// assuming more float layers never hurt.</summary>
    Binary,
}

/// <summary>Settings of <see cref="AccuracyBudgetSearch"/>.</summary>
public sealed record AccuracyBudgetOptions
{
    /// <summary>The data the metric is measured on, built against the model's inputs (ideally not the calibration data).</summary>
    public required IDataFeed Eval { get; init; }

    /// <summary>The largest drop of the metric allowed against the float model: percentage points for accuracy and
    /// agreement, absolute cosine for cosine.</summary>
    public required double MaxDrop { get; init; }

    /// <summary>The metric (default: chosen from the data, see <see cref="BudgetMetric.Auto"/>).</summary>
    public BudgetMetric Metric { get; init; } = BudgetMetric.Auto;

    /// <summary>Wall-clock bound of the search, or null for none. Checked between tries: when it is spent the search
    /// stops and the best candidate so far is kept (the result says so).</summary>
    public TimeSpan? TimeBudget { get; init; }

    /// <summary>What the search does to the layers it ranks most sensitive (default: keeps them float).</summary>
    public BudgetRemedy Remedy { get; init; } = BudgetRemedy.KeepFloat;

    /// <summary>How the ranked layers are searched (default <see cref="BudgetSearchStrategy.Binary"/>).</summary>
    public BudgetSearchStrategy Search { get; init; } = BudgetSearchStrategy.Binary;

    /// <summary>Rows per eval batch.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Evaluate at most this many rows of <see cref="Eval"/>; null for all.</summary>
    public int? MaxRows { get; init; }

    /// <summary>Extra timed runs of the first batch per candidate, so that a small eval set still gives a latency median.</summary>
    public int TimingRuns { get; init; } = 5;

    /// <summary>Runtime of the eval sessions (one per candidate).</summary>
    public RuntimeOptions Runtime { get; init; } = RuntimeOptions.Default;

    /// <summary>Receives one-line notes.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Checks the values.</summary>
    /// <exception cref="ArgumentException">A value is out of range.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Eval);
        if (!Enum.IsDefined(Metric)) throw new ArgumentException($"unknown metric {Metric}.", nameof(Metric));
        if (!Enum.IsDefined(Search)) throw new ArgumentException($"unknown search strategy {Search}.", nameof(Search));
        if (!Enum.IsDefined(Remedy)) throw new ArgumentException($"unknown remedy {Remedy}.", nameof(Remedy));
        double limit = Metric is BudgetMetric.Cosine or BudgetMetric.MinCosine ? 2 : 100;
        if (!(MaxDrop >= 0 && MaxDrop <= limit))
            throw new ArgumentException($"the maximum drop must be in [0, {limit}] for {Metric}, not {MaxDrop}.", nameof(MaxDrop));
        if (TimeBudget is { } t && t <= TimeSpan.Zero)
            throw new ArgumentException($"the time budget must be positive, not {t}.", nameof(TimeBudget));
        if (BatchSize < 1) throw new ArgumentException($"the batch size must be at least 1, not {BatchSize}.", nameof(BatchSize));
        if (MaxRows is < 1) throw new ArgumentException($"the row limit must be at least 1, not {MaxRows}.", nameof(MaxRows));
        if (TimingRuns < 0) throw new ArgumentException($"timing runs cannot be negative ({TimingRuns}).", nameof(TimingRuns));
    }
}
