using System.Globalization;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Quantization.Budget;
using MLNetCompress.Runtime;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>What <see cref="QdqGateRecovery.Recover"/> found and chose.</summary>
/// <param name="Options">The quantization options to run again (the responsible layers remedied).</param>
/// <param name="Notes">What was measured and done, one line each.</param>
/// <param name="Met">True when the chosen candidate met the gate on the probes.</param>
public sealed record QdqRecovery(QdqOptions Options, IReadOnlyList<string> Notes, bool Met);

/// <summary>
/// What the engine does when a statically quantized model fails the verification gate, instead of refusing: it finds
/// the layers responsible with the accuracy-budget machinery (each layer alone quantized, scored by the gate's own
/// metric, the lowest per-row cosine, on the gate's own probes), then remedies the most sensitive first with uint8
/// weights (full 8-bit precision on ONNX Runtime's U8U8 kernels, which cannot clip, instead of the pair-safe guard's
/// wider scales), and if that is not enough keeps the most sensitive float: the smallest change that passes.
/// </summary>
public static class QdqGateRecovery
{
    /// <summary>Searches for options that pass the gate.</summary>
    /// <param name="beforeQuantization">The model as the quantization pass received it (not modified).</param>
    /// <param name="options">The pass's options.</param>
    /// <param name="probes">The gate's probes, or null for its random probes.</param>
    /// <param name="verify">The gate's thresholds.</param>
    /// <param name="failure">Why the gate refused the model, for the notes.</param>
    /// <param name="cancellationToken">Stops between tries.</param>
    public static QdqRecovery Recover(ModelGraph beforeQuantization, QdqOptions options, IDataFeed? probes, VerifyOptions verify,
        string failure, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(beforeQuantization);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(verify);
        if (probes is null)
        {
            using var runner = ModelRunner.Load(beforeQuantization.ToBytes(), verify.Runtime);
            probes = new RandomFeed(runner.Inputs, verify.ProbeRows, verify.Seed);
        }
        var notes = new List<string> { $"the verification gate refused the int8 model ({failure}); searching for the layers responsible." };
        var budget = new AccuracyBudgetOptions
        {
            Eval = probes,
            MaxDrop = 1 - verify.MinCosine,
            Metric = BudgetMetric.MinCosine,
            MaxRows = verify.ProbeRows,
            BatchSize = verify.BatchSize,
            Runtime = verify.Runtime,
            Remedy = BudgetRemedy.Uint8Weights,
            Log = verify.Log,
        };
        var c = CultureInfo.InvariantCulture;
        var uint8 = AccuracyBudgetSearch.Run(beforeQuantization, options, budget, null, cancellationToken);
        if (uint8.Sensitivity.Count > 0)
            notes.Add("most sensitive layers (lowest cosine with that layer alone int8): " +
                      string.Join(", ", uint8.Sensitivity.Take(5).Select(s => $"{s.Layer} {(1 - s.Drop).ToString("0.0000", c)}")) + ".");
        if (uint8.Best.MeetsBudget)
        {
            notes.Add($"remedy: {uint8.Best.Describe()}; lowest probe cosine {uint8.Best.Metric.ToString("0.0000", c)}.");
            return new QdqRecovery(uint8.BestOptions, notes, true);
        }
        notes.Add($"uint8 weights were not enough (best: {uint8.Best.Describe()}, lowest cosine {uint8.Best.Metric.ToString("0.0000", c)}); keeping the most sensitive float.");
        var keepFloat = AccuracyBudgetSearch.Run(beforeQuantization, options, budget with { Remedy = BudgetRemedy.KeepFloat }, null, cancellationToken);
        notes.Add($"remedy: {keepFloat.Best.Describe()}; lowest probe cosine {keepFloat.Best.Metric.ToString("0.0000", c)}" +
                  (keepFloat.Best.MeetsBudget ? "." : $", still below {verify.MinCosine.ToString(c)}."));
        return new QdqRecovery(keepFloat.BestOptions, notes, keepFloat.Best.MeetsBudget);
    }
}
