using System.Diagnostics;
using MLNetCompress.Data;
using MLNetCompress.Runtime;

namespace MLNetCompress.Evaluation;

/// <summary>Runs a baseline and a candidate model over the same data and reports fidelity (cosine, differences,
/// top-1 agreement, accuracy), size and latency. Each model gets one session for the whole run; batches run
/// interleaved (the order alternating per batch), after warm-up, on the shared thread pool, so both models
/// see the same machine state.</summary>
public static class ModelComparer
{
    /// <summary>Compares two model files.</summary>
    public static EvalReport Compare(string baselinePath, string candidatePath, IDataFeed feed, EvalOptions? options = null,
        IProgress<EvalProgress>? progress = null, CancellationToken cancellationToken = default) =>
        Compare(ModelSource.FromFile(baselinePath), ModelSource.FromFile(candidatePath), feed, options, progress, cancellationToken);

    /// <summary>Compares two serialized models.</summary>
    public static EvalReport Compare(byte[] baselineModel, byte[] candidateModel, IDataFeed feed, EvalOptions? options = null,
        IProgress<EvalProgress>? progress = null, CancellationToken cancellationToken = default) =>
        Compare(ModelSource.FromBytes(baselineModel, "baseline"), ModelSource.FromBytes(candidateModel, "candidate"), feed, options, progress, cancellationToken);

    /// <summary>Compares a candidate with its baseline over <paramref name="feed"/>.</summary>
    /// <param name="baseline">The reference model.</param>
    /// <param name="candidate">The model judged; it must have the baseline's inputs and outputs.</param>
    /// <param name="feed">The data, built against the baseline's inputs.</param>
    /// <param name="options">Batch size, row limit, timing and runtime settings.</param>
    /// <param name="progress">Receives progress after each batch.</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    /// <exception cref="OrtRuntimeException">A model does not load.</exception>
    /// <exception cref="InvalidOperationException">The models disagree on inputs, outputs or output shapes, or the feed is empty.</exception>
    public static EvalReport Compare(ModelSource baseline, ModelSource candidate, IDataFeed feed, EvalOptions? options = null,
        IProgress<EvalProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(baseline);
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(feed);
        options ??= new EvalOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1);
        var clock = Stopwatch.StartNew();

        using var a = baseline.Load(options.Runtime, options.Log);
        using var b = LoadCandidate(candidate, a, options.Runtime, options.Log);
        var stats = a.OutputNames.Select(n => new OutputStats(n)).ToArray();
        var latA = new List<double>();
        var latB = new List<double>();
        long? total = feed.Count is long c ? Math.Min(c, options.MaxRows ?? long.MaxValue) : options.MaxRows;
        long rows = 0;
        var batchIndex = 0;
        DataBatch? first = null;

        foreach (var batch in feed.Batches(options.BatchSize, options.MaxRows))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (first is null)
            {
                first = batch;
                progress?.Report(new EvalProgress("warmup", 0, total));
                for (var i = 0; i < options.WarmupRuns; i++)
                {
                    a.Run(batch);
                    b.Run(batch);
                }
            }
            RunPair(a, b, batch, batchIndex++ % 2 == 1, out var ra, out var rb);
            // Only full batches are timed, so every sample measures the same amount of work.
            if (batch.RowCount == first.RowCount)
            {
                latA.Add(ra.ElapsedMilliseconds);
                latB.Add(rb.ElapsedMilliseconds);
            }
            for (var k = 0; k < stats.Length; k++) stats[k].Add(ra.Outputs[k], rb.Outputs[k], batch.Labels);
            rows += batch.RowCount;
            progress?.Report(new EvalProgress("compare", rows, total));
        }
        if (first is null) throw new InvalidOperationException($"the data feed ({feed.Description}) gave no rows");

        if (latA.Count < options.MinLatencySamples)
        {
            progress?.Report(new EvalProgress("latency", rows, total));
            while (latA.Count < options.MinLatencySamples)
            {
                cancellationToken.ThrowIfCancellationRequested();
                RunPair(a, b, first, batchIndex++ % 2 == 1, out var ra, out var rb);
                latA.Add(ra.ElapsedMilliseconds);
                latB.Add(rb.ElapsedMilliseconds);
            }
        }

        using var process = Process.GetCurrentProcess();
        process.Refresh();
        return new EvalReport(
            feed.Description,
            rows,
            first.RowCount,
            options.BaselineBytes ?? baseline.SizeBytes,
            options.CandidateBytes ?? candidate.SizeBytes,
            stats.Select(s => s.Result()).ToArray(),
            Median(latA),
            Median(latB),
            latA.Count,
            process.PeakWorkingSet64,
            a.OnGpu && b.OnGpu,
            clock.Elapsed);
    }

    /// <summary>Loads the candidate fetching the baseline's outputs (in its order), after checking the inputs agree.</summary>
    internal static ModelRunner LoadCandidate(ModelSource candidate, ModelRunner baseline, RuntimeOptions runtime, Action<string>? log)
    {
        var runner = candidate.Load(runtime, log);
        try
        {
            if (InputMismatch(baseline, runner) is { } inputs) throw new InvalidOperationException(inputs);
            var missing = baseline.OutputNames.FirstOrDefault(n => !runner.Session.OutputMetadata.ContainsKey(n));
            if (missing is not null) throw new InvalidOperationException($"the candidate has no output '{missing}'");
            if (runner.OutputNames.SequenceEqual(baseline.OutputNames)) return runner;
            return runner.WithOutputs(baseline.OutputNames);
        }
        catch
        {
            runner.Dispose();
            throw;
        }
    }

    /// <summary>Why the two models' inputs disagree (name, element type, rank), or null when they agree.</summary>
    internal static string? InputMismatch(ModelRunner baseline, ModelRunner candidate)
    {
        foreach (var want in baseline.Inputs)
        {
            var have = candidate.Inputs.FirstOrDefault(i => i.Name == want.Name);
            if (have is null) return $"the candidate has no input '{want.Name}'";
            if (have.ElementType != want.ElementType) return $"candidate input '{want.Name}' is {have.ElementType}, the baseline's {want.ElementType}";
            if (have.Rank != want.Rank && have.Rank != 0 && want.Rank != 0)
                return $"candidate input '{want.Name}' is {have.FormatShape()}, the baseline's {want.FormatShape()}";
        }
        var extra = candidate.Inputs.FirstOrDefault(i => baseline.Inputs.All(w => w.Name != i.Name));
        return extra is null ? null : $"the candidate has an extra input '{extra.Name}'";
    }

    private static void RunPair(ModelRunner a, ModelRunner b, DataBatch batch, bool candidateFirst, out RunOutputs ra, out RunOutputs rb)
    {
        // Alternating who goes first cancels any advantage of running right after the other model.
        if (candidateFirst)
        {
            rb = b.Run(batch);
            ra = a.Run(batch);
        }
        else
        {
            ra = a.Run(batch);
            rb = b.Run(batch);
        }
    }

    internal static double Median(List<double> values)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.ToArray();
        Array.Sort(sorted);
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
