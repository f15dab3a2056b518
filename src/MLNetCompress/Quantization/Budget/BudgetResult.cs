using System.Globalization;
using MLNetCompress.Quantization.Qdq;

namespace MLNetCompress.Quantization.Budget;

/// <summary>Why a candidate was tried.</summary>
public enum BudgetStep
{
    /// <summary>Every layer the pass can quantize, quantized.</summary>
    All,

    /// <summary>One layer quantized, every other layer float: that layer's sensitivity. A measurement only: the
    /// layer is kept quantized even where ONNX Runtime would not fuse it among float neighbours.</summary>
    Sensitivity,

    /// <summary>The most sensitive layers kept in float, the rest quantized.</summary>
    Search,
}

/// <summary>One candidate the search built, ran and measured.</summary>
/// <param name="Step">Why it was tried.</param>
/// <param name="Excluded">The layers kept in float by the search (the user's own exclusions not included).</param>
/// <param name="QuantizedLayers">The weighted layers (Conv, Gemm, MatMul, …) the pass quantized in it.</param>
/// <param name="Metric">The metric's value.</param>
/// <param name="Drop">The float model's value minus this one (positive: worse).</param>
/// <param name="MeetsBudget">True when <paramref name="Drop"/> is within the budget.</param>
/// <param name="Bytes">Size of the serialized candidate.</param>
/// <param name="MedianMs">Median milliseconds per eval batch (not interleaved with the float model: indicative).</param>
/// <param name="LatencyRatio">Its median over the float model's.</param>
/// <param name="Remedy">What was done to the <paramref name="Excluded"/> layers: kept float, or given uint8 weights.</param>
public sealed record BudgetCandidate(BudgetStep Step, IReadOnlyList<string> Excluded, IReadOnlyList<string> QuantizedLayers,
    double Metric, double Drop, bool MeetsBudget, long Bytes, double MedianMs, double LatencyRatio, BudgetRemedy Remedy = BudgetRemedy.KeepFloat)
{
    /// <summary>A short description: which layers are float or quantized.</summary>
    public string Describe() => Step switch
    {
        BudgetStep.All => "all layers quantized",
        BudgetStep.Sensitivity => "only " + (QuantizedLayers.Count > 0 ? QuantizedLayers[0] : "(nothing)") + " quantized (measurement)",
        _ => Remedy == BudgetRemedy.Uint8Weights
            ? $"{Excluded.Count} most sensitive with uint8 weights: {string.Join(", ", Excluded)}"
            : $"{Excluded.Count} most sensitive float: {string.Join(", ", Excluded)}",
    };
}

/// <summary>A layer's sensitivity: the metric's drop when it alone is quantized.</summary>
/// <param name="Layer">The node's name (or label).</param>
/// <param name="OpType">Its op type.</param>
/// <param name="Drop">The drop with only this layer quantized.</param>
public sealed record LayerSensitivity(string Layer, string OpType, double Drop);

/// <summary>What <see cref="AccuracyBudgetSearch"/> found.</summary>
public sealed class BudgetResult
{
    internal BudgetResult(BudgetMetric metric, double maxDrop, double baselineMetric, double baselineMs, IReadOnlyList<string> layers,
        IReadOnlyList<LayerSensitivity> sensitivity, IReadOnlyList<BudgetCandidate> candidates, BudgetCandidate best, bool stoppedByTime,
        QdqOptions bestOptions, IReadOnlyList<string> notes, TimeSpan elapsed)
    {
        Metric = metric; MaxDrop = maxDrop; BaselineMetric = baselineMetric; BaselineMedianMs = baselineMs; Layers = layers;
        Sensitivity = sensitivity; Candidates = candidates; Best = best; StoppedByTime = stoppedByTime; BestOptions = bestOptions;
        Notes = notes; Elapsed = elapsed;
    }

    /// <summary>The metric measured (never <see cref="BudgetMetric.Auto"/>).</summary>
    public BudgetMetric Metric { get; }

    /// <summary>The budget.</summary>
    public double MaxDrop { get; }

    /// <summary>The float model's value of the metric.</summary>
    public double BaselineMetric { get; }

    /// <summary>The float model's median milliseconds per eval batch.</summary>
    public double BaselineMedianMs { get; }

    /// <summary>The weighted layers the pass quantizes when nothing is excluded, in graph order.</summary>
    public IReadOnlyList<string> Layers { get; }

    /// <summary>The layers measured one at a time, most sensitive first (fewer than <see cref="Layers"/> when the time
    /// budget ran out).</summary>
    public IReadOnlyList<LayerSensitivity> Sensitivity { get; }

    /// <summary>Every candidate tried, in order.</summary>
    public IReadOnlyList<BudgetCandidate> Candidates { get; }

    /// <summary>The candidate to write: among those within the budget, the one with the most layers quantized (then
    /// the smallest drop); when none is within it, the one with the smallest drop. Never a one-layer sensitivity try
    /// (a measurement whose layer would run unfused).</summary>
    public BudgetCandidate Best { get; }

    /// <summary>True when <see cref="Best"/> is within the budget.</summary>
    public bool BudgetMet => Best.MeetsBudget;

    /// <summary>True when the time budget stopped the search before it finished.</summary>
    public bool StoppedByTime { get; }

    /// <summary>The options that rebuild <see cref="Best"/> from the original model with <see cref="QdqRecipe.Passes"/>:
    /// the search's exclusions added, and the statistics of its one calibration run reused.</summary>
    public QdqOptions BestOptions { get; }

    /// <summary>One line per decision worth reporting (opset upgrade, early stop, budget not met).</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>Wall time of the search.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>A metric value with its unit, for reports.</summary>
    public string Format(double value) => Metric == BudgetMetric.Cosine
        ? value.ToString("0.00000", CultureInfo.InvariantCulture)
        : value.ToString("0.00", CultureInfo.InvariantCulture) + (Metric == BudgetMetric.Accuracy ? "%" : "% agree");

    /// <summary>A drop with its unit, for reports.</summary>
    public string FormatDrop(double drop) => Metric == BudgetMetric.Cosine
        ? drop.ToString("0.00000", CultureInfo.InvariantCulture)
        : drop.ToString("0.00", CultureInfo.InvariantCulture) + " pt";
}

/// <summary>Progress of the search.</summary>
/// <param name="Phase">"prepare", "calibrate", "baseline", "all", "sensitivity" or "search".</param>
/// <param name="Done">Tries done in this phase.</param>
/// <param name="Total">Tries in this phase, when known.</param>
/// <param name="Step">What runs now, in a few words.</param>
public sealed record BudgetProgress(string Phase, int Done, int? Total, string Step);
