using System.Globalization;
using MLNetCompress.Data;
using MLNetCompress.Runtime;
using Microsoft.ML.OnnxRuntime;

namespace MLNetCompress.Evaluation;

/// <summary>Thresholds and probes for <see cref="Verifier"/>.</summary>
public sealed record VerifyOptions
{
    /// <summary>Every output's lowest per-row cosine must reach this.</summary>
    public double MinCosine { get; init; } = 0.99;

    /// <summary>No element may differ by more than this; null for no limit.</summary>
    public double? MaxAbsDiff { get; init; }

    /// <summary>Classification outputs ([N,C]) must agree on the argmax of at least this share of rows; null for no limit.</summary>
    public double? MinTop1Agreement { get; init; }

    /// <summary>Rows probed: the random probe count when no feed is given, else a cap on the feed's rows.</summary>
    public int ProbeRows { get; init; } = 8;

    /// <summary>Rows per probe batch.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Seed of the random probes.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Runtime for both sessions.</summary>
    public RuntimeOptions Runtime { get; init; } = RuntimeOptions.Default;

    /// <summary>Receives one-line notes.</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>The verdict on a candidate model.</summary>
/// <param name="Passed">True when the candidate loads, runs, and meets every threshold.</param>
/// <param name="Reason">One line: why it failed, or a summary of the pass.</param>
/// <param name="Outputs">Fidelity per output (empty when the comparison could not run).</param>
/// <param name="Rows">Probe rows compared.</param>
public sealed record VerifyResult(bool Passed, string Reason, IReadOnlyList<OutputComparison> Outputs, long Rows)
{
    internal static VerifyResult Fail(string reason) => new(false, reason, [], 0);
}

/// <summary>Checks a candidate model before it is written: it must load in ONNX Runtime, take the original's
/// inputs, give its outputs, and match them on probe rows. Failures are results, never exceptions.</summary>
public static class Verifier
{
    /// <summary>Verifies serialized models.</summary>
    /// <param name="originalModel">The model the candidate was made from.</param>
    /// <param name="candidateModel">The model to check.</param>
    /// <param name="probes">Probe data built against the original's inputs, or null for random probes.</param>
    /// <param name="options">Thresholds; null for the defaults (min cosine 0.99).</param>
    public static VerifyResult Verify(byte[] originalModel, byte[] candidateModel, IDataFeed? probes = null, VerifyOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(originalModel);
        ArgumentNullException.ThrowIfNull(candidateModel);
        return Verify(ModelSource.FromBytes(originalModel, "original"), ModelSource.FromBytes(candidateModel, "candidate"), probes, options);
    }

    /// <summary>Verifies a candidate against its original.</summary>
    public static VerifyResult Verify(ModelSource original, ModelSource candidate, IDataFeed? probes = null, VerifyOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(original);
        ArgumentNullException.ThrowIfNull(candidate);
        options ??= new VerifyOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ProbeRows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1);

        ModelRunner a;
        try
        {
            a = original.Load(options.Runtime, options.Log);
        }
        catch (OrtRuntimeException e)
        {
            return VerifyResult.Fail($"the original model does not load: {OrtRuntimeException.OneLine(e.InnerException ?? e)}");
        }
        using (a)
        {
            ModelRunner b;
            try
            {
                b = ModelComparer.LoadCandidate(candidate, a, options.Runtime, options.Log);
            }
            catch (OrtRuntimeException e)
            {
                return VerifyResult.Fail($"the candidate does not load in ONNX Runtime: {OrtRuntimeException.OneLine(e.InnerException ?? e)}");
            }
            catch (InvalidOperationException e)
            {
                return VerifyResult.Fail(OrtRuntimeException.OneLine(e));
            }
            using (b)
                return Compare(a, b, probes, options);
        }
    }

    private static VerifyResult Compare(ModelRunner a, ModelRunner b, IDataFeed? probes, VerifyOptions options)
    {
        IDataFeed feed;
        try
        {
            feed = probes ?? new RandomFeed(a.Inputs, options.ProbeRows, options.Seed);
        }
        catch (DataSpecException e)
        {
            return VerifyResult.Fail($"no probe data for the original's inputs: {e.Message}");
        }

        var stats = a.OutputNames.Select(n => new OutputStats(n)).ToArray();
        long rows = 0;
        foreach (var batch in feed.Batches(options.BatchSize, options.ProbeRows))
        {
            RunOutputs ra, rb;
            try
            {
                ra = a.Run(batch);
            }
            catch (OnnxRuntimeException e)
            {
                return VerifyResult.Fail($"the original fails on the probe rows: {OrtRuntimeException.OneLine(e)}");
            }
            try
            {
                rb = b.Run(batch);
            }
            catch (OnnxRuntimeException e)
            {
                return VerifyResult.Fail($"the candidate fails to run: {OrtRuntimeException.OneLine(e)}");
            }
            try
            {
                for (var k = 0; k < stats.Length; k++) stats[k].Add(ra.Outputs[k], rb.Outputs[k], batch.Labels);
            }
            catch (InvalidOperationException e)
            {
                return VerifyResult.Fail(OrtRuntimeException.OneLine(e));
            }
            rows += batch.RowCount;
        }
        if (rows == 0) return VerifyResult.Fail("the probe data gave no rows");

        var results = stats.Select(s => s.Result()).ToArray();
        foreach (var r in results)
        {
            // Written as !(x >= limit) so that NaN fails too.
            if (!(r.MinCosine >= options.MinCosine))
                return new VerifyResult(false, $"output '{r.Name}': min cosine {F(r.MinCosine)} is below {F(options.MinCosine)}", results, rows);
            if (options.MaxAbsDiff is double maxAbs && !(r.MaxAbsDiff <= maxAbs))
                return new VerifyResult(false, $"output '{r.Name}': max abs diff {F(r.MaxAbsDiff)} is above {F(maxAbs)}", results, rows);
            if (options.MinTop1Agreement is double minAgree && r.Top1Agreement is double agree && !(agree >= minAgree))
                return new VerifyResult(false, $"output '{r.Name}': top-1 agreement {F(agree)} is below {F(minAgree)}", results, rows);
        }
        var worst = results.MinBy(r => r.MinCosine);
        var summary = worst is null
            ? $"passed on {rows} probe rows"
            : $"passed on {rows} probe rows: min cosine {F(worst.MinCosine)} ('{worst.Name}'), max abs diff {F(results.Max(r => r.MaxAbsDiff))}";
        return new VerifyResult(true, summary, results, rows);
    }

    private static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}
