using Microsoft.ML.OnnxRuntime.Tensors;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Runtime;

namespace MLNetCompress.Calibration;

/// <summary>How an activation's quantization range is chosen from its calibration statistics.</summary>
public enum RangeMethod
{
    /// <summary>The smallest and largest value seen: nothing is clipped, outliers stretch the step.</summary>
    MinMax,

    /// <summary>The values at a low and a high percentile (e.g. 0.01 % and 99.99 %): rare outliers are clipped.</summary>
    Percentile,

    /// <summary>The threshold whose 128-level quantized |x| distribution is closest in KL divergence to the
    /// observed one (TensorRT's entropy calibration).</summary>
    Entropy,

    /// <summary>The threshold that minimizes the expected squared quantization error (rounding inside the range,
    /// clipping outside it).</summary>
    Mse,
}

/// <summary>A float range <c>[Min, Max]</c> that an activation is quantized over; it always contains 0.</summary>
/// <param name="Min">Lower end (≤ 0).</param>
/// <param name="Max">Upper end (≥ 0).</param>
public readonly record struct ActivationRange(float Min, float Max)
{
    /// <summary>The range widened to contain 0, as affine quantization needs (0 must be exact for padding and ReLU).</summary>
    public static ActivationRange Containing0(float min, float max) => new(MathF.Min(min, 0), MathF.Max(max, 0));
}

/// <summary>Settings of <see cref="ActivationRanges.Choose"/>.</summary>
public sealed record RangeMethodOptions
{
    /// <summary>The method.</summary>
    public RangeMethod Method { get; init; } = RangeMethod.MinMax;

    /// <summary>For <see cref="RangeMethod.Percentile"/>: the upper percentile in (50, 100]; the lower one is 100 minus it.</summary>
    public double Percentile { get; init; } = 99.99;

    /// <summary>For <see cref="RangeMethod.Mse"/>: quantization levels of the target type (256 for 8 bits).</summary>
    public int Levels { get; init; } = 256;

    /// <summary>For <see cref="RangeMethod.Entropy"/>: levels of |x| the candidate distributions are quantized to (TensorRT: 128).</summary>
    public int EntropyLevels { get; init; } = 128;

    /// <summary>Checks the values.</summary>
    /// <exception cref="ArgumentException">A value is out of range.</exception>
    public void Validate()
    {
        if (!(Percentile > 50 && Percentile <= 100))
            throw new ArgumentException($"the percentile must be in (50, 100], not {Percentile}.", nameof(Percentile));
        if (Levels < 2) throw new ArgumentException($"levels must be at least 2, not {Levels}.", nameof(Levels));
        if (EntropyLevels < 2) throw new ArgumentException($"entropy levels must be at least 2, not {EntropyLevels}.", nameof(EntropyLevels));
    }
}

/// <summary>
/// Activation range calibration: runs the float model over a feed with the watched values exposed as extra outputs,
/// keeps <see cref="HistogramStatistics"/> per value (memory flat in the number of rows), and turns each into a range
/// by MinMax, Percentile, Entropy (KL) or MSE.
/// </summary>
public static class ActivationRanges
{
    /// <summary>Collects statistics of <paramref name="values"/> (graph inputs or node outputs of the main graph) over the feed.
    /// Values that are not float in this run are left out of the result.</summary>
    /// <param name="graph">The float model (not modified).</param>
    /// <param name="values">The values to watch.</param>
    /// <param name="feed">Calibration data built against the model's inputs.</param>
    /// <param name="options">Rows, batch size, runtime.</param>
    /// <param name="bins">Histogram bins per value.</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    /// <exception cref="InvalidOperationException">The feed gave no rows, or a value is not a main-graph value.</exception>
    public static IReadOnlyDictionary<string, HistogramStatistics> Collect(ModelGraph graph, IReadOnlyList<string> values, IDataFeed feed,
        CalibrationOptions? options = null, int bins = HistogramStatistics.DefaultBins, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(feed);
        options ??= new CalibrationOptions();
        var stats = new Dictionary<string, HistogramStatistics>(StringComparer.Ordinal);
        var names = values.Distinct(StringComparer.Ordinal).ToList();
        // Graph inputs cannot be fetched as outputs; their statistics come straight from the batches.
        var fromInputs = names.Where(graph.Main.IsGraphInput).ToList();
        var fromRun = names.Where(n => !graph.Main.IsGraphInput(n)).ToList();
        using var runner = fromRun.Count == 0 ? null
            : ModelRunner.Load(CalibrationCollector.WithOutputs(graph, fromRun), options.Runtime, options.Log, fromRun);
        long rows = 0;
        foreach (var batch in feed.Batches(options.BatchSize, options.MaxRows))
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (var name in fromInputs)
                if (batch.Inputs.TryGetValue(name, out var t) && t.ElementType == TensorElementType.Float)
                {
                    var s = StatsFor(stats, name, bins);
                    s.FirstShape ??= t.Shape.ToArray();
                    s.Add(t.FloatData);
                }
            if (runner is not null)
            {
                var outputs = runner.Run(batch);
                foreach (var o in outputs.Outputs)
                    if (o.SourceType == TensorElementType.Float)
                    {
                        var s = StatsFor(stats, o.Name, bins);
                        s.FirstShape ??= o.Shape.ToArray();
                        s.Add(o.Data);
                    }
            }
            rows += batch.RowCount;
        }
        if (rows == 0) throw new InvalidOperationException($"the calibration data ({feed.Description}) gave no rows.");
        return stats;
    }

    /// <summary>The range the method chooses for one value's statistics.</summary>
    /// <exception cref="InvalidOperationException">The statistics hold no values.</exception>
    public static ActivationRange Choose(HistogramStatistics stats, RangeMethodOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stats);
        options ??= new RangeMethodOptions();
        options.Validate();
        if (stats.Count == 0) throw new InvalidOperationException("no values were collected for this tensor.");
        if (stats.Range == 0) return new ActivationRange(0, 0);
        return options.Method switch
        {
            RangeMethod.MinMax => ActivationRange.Containing0(stats.Min, stats.Max),
            RangeMethod.Percentile => ActivationRange.Containing0(
                stats.Quantile(1 - options.Percentile / 100), stats.Quantile(options.Percentile / 100)),
            RangeMethod.Entropy => Clip(stats, EntropyThreshold(stats, options.EntropyLevels)),
            RangeMethod.Mse => Clip(stats, MseThreshold(stats, options.Levels)),
            _ => throw new ArgumentOutOfRangeException(nameof(options), $"unknown range method {options.Method}."),
        };
    }

    /// <summary>
    /// TensorRT's entropy calibration over the |x| histogram: for each candidate bin count <c>i</c> (from the number
    /// of levels up), the reference P is the first <c>i</c> bins with the tail folded into the last one, Q is those
    /// bins merged into <paramref name="levels"/> groups and spread back over their non-empty bins; the threshold is
    /// the upper edge of the <c>i</c> with the smallest KL(P‖Q).
    /// </summary>
    public static float EntropyThreshold(HistogramStatistics stats, int levels)
    {
        ArgumentNullException.ThrowIfNull(stats);
        var abs = stats.AbsoluteCounts();
        // 0 is exact in every affine range, so the spike of zeros a ReLU makes carries no information about the
        // threshold; left in, it dominates the first merged group and drags the threshold far down.
        abs[0] = 0;
        int n = abs.Length;
        double width = stats.Range / (double)n;
        int last = LastNonEmpty(abs);
        if (last < levels) return (float)((last + 1) * width);
        var p = new double[n];
        var q = new double[n];
        double bestKl = double.PositiveInfinity;
        int best = last + 1;
        // Suffix sums so the tail outside each candidate is O(1).
        var suffix = new double[n + 1];
        for (int k = n - 1; k >= 0; k--) suffix[k] = suffix[k + 1] + abs[k];
        double total = suffix[0];
        for (int i = levels; i <= last + 1; i++)
        {
            abs.AsSpan(0, i).CopyTo(p);
            p[i - 1] += suffix[i];
            q.AsSpan(0, i).Clear();
            double perGroup = (double)i / levels;
            for (int g = 0; g < levels; g++)
            {
                int start = (int)Math.Floor(g * perGroup);
                int end = g == levels - 1 ? i : (int)Math.Floor((g + 1) * perGroup);
                double sum = 0;
                int nonEmpty = 0;
                for (int k = start; k < end; k++)
                {
                    sum += abs[k];
                    if (abs[k] > 0) nonEmpty++;
                }
                if (nonEmpty == 0) continue;
                double share = sum / nonEmpty;
                for (int k = start; k < end; k++)
                    if (abs[k] > 0) q[k] = share;
            }
            double kl = Kl(p.AsSpan(0, i), q.AsSpan(0, i), total);
            if (kl < bestKl)
            {
                bestKl = kl;
                best = i;
            }
        }
        return (float)(best * width);
    }

    /// <summary>
    /// The symmetric threshold T (one of 256 evenly spaced candidates up to the largest magnitude) that minimizes the
    /// expected squared error of quantizing the histogram over <c>[max(min, −T), min(max, T)]</c> with
    /// <paramref name="levels"/> levels: <c>step²/12</c> per value inside, the squared distance to the edge outside.
    /// </summary>
    public static float MseThreshold(HistogramStatistics stats, int levels)
    {
        ArgumentNullException.ThrowIfNull(stats);
        const int candidates = 256;
        var counts = stats.Counts;
        double width = stats.BinWidth;
        double maxAbs = Math.Max(Math.Abs(stats.Min), Math.Abs(stats.Max));
        double bestError = double.PositiveInfinity;
        double best = maxAbs;
        for (int j = 1; j <= candidates; j++)
        {
            double t = maxAbs * j / candidates;
            double lo = Math.Min(Math.Max(stats.Min, -t), 0);
            double hi = Math.Max(Math.Min(stats.Max, t), 0);
            double step = (hi - lo) / (levels - 1);
            double inside = step * step / 12;
            double error = 0;
            for (int i = 0; i < counts.Length; i++)
            {
                double c = counts[i];
                if (c == 0) continue;
                double x = -stats.Range + (i + 0.5) * width;
                double d = x < lo ? lo - x : x > hi ? x - hi : 0;
                error += c * (d > 0 ? d * d : inside);
            }
            if (error < bestError)
            {
                bestError = error;
                best = t;
            }
        }
        return (float)best;
    }

    private static ActivationRange Clip(HistogramStatistics stats, float threshold) =>
        ActivationRange.Containing0(MathF.Max(stats.Min, -threshold), MathF.Min(stats.Max, threshold));

    private static double Kl(ReadOnlySpan<double> p, ReadOnlySpan<double> q, double total)
    {
        double qTotal = 0;
        foreach (double v in q) qTotal += v;
        if (qTotal == 0) return double.PositiveInfinity;
        double kl = 0;
        for (int k = 0; k < p.Length; k++)
        {
            if (p[k] == 0) continue;
            double pk = p[k] / total;
            // A bin that P fills and Q empties gets a small floor instead of an infinite divergence.
            double qk = Math.Max(q[k] / qTotal, 1e-12);
            kl += pk * Math.Log(pk / qk);
        }
        return kl;
    }

    private static int LastNonEmpty(ReadOnlySpan<double> counts)
    {
        for (int k = counts.Length - 1; k >= 0; k--)
            if (counts[k] > 0) return k;
        return 0;
    }

    private static HistogramStatistics StatsFor(Dictionary<string, HistogramStatistics> stats, string name, int bins)
    {
        if (!stats.TryGetValue(name, out var s)) stats[name] = s = new HistogramStatistics(bins);
        return s;
    }
}
