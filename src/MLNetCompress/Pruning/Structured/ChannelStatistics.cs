using System.Numerics.Tensors;
using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Runtime;

namespace MLNetCompress.Pruning.Structured;

/// <summary>A value to watch during calibration: its channel count, whether it is a flattened [N, C·H·W] view, and
/// whether its channel covariance is wanted (reconstruction) or only the mean |activation| per channel.</summary>
internal sealed record ChannelStatsRequest(string Value, int Channels, bool Flattened, bool Covariance);

/// <summary>Per-channel statistics of one value over the calibration data.</summary>
internal sealed class ValueChannelStats(int channels, bool covariance)
{
    private readonly double[] sumAbs = new double[channels];

    /// <summary>Values seen per channel.</summary>
    public long Count { get; private set; }

    /// <summary>Σx and Σx·xᵀ over positions (one vector of channels per position), when requested.</summary>
    public RunningCovariance? Covariance { get; } = covariance ? new RunningCovariance(channels) : null;

    /// <summary>The mean |x| of each channel.</summary>
    public double[] MeanAbs()
    {
        var m = new double[sumAbs.Length];
        if (Count > 0) TensorPrimitives.Multiply(sumAbs, 1.0 / Count, m);
        return m;
    }

    /// <summary>Adds an [outer, channels, inner] tensor.</summary>
    public void Add(ReadOnlySpan<float> data, long[] view, int stride)
    {
        int c = sumAbs.Length;
        int inner = checked((int)view[2]);
        for (long o = 0; o < view[0]; o++)
            for (int ch = 0; ch < c; ch++)
                sumAbs[ch] += TensorPrimitives.SumOfMagnitudes(data.Slice(checked((int)((o * c + ch) * inner)), inner));
        Count += view[0] * inner;
        Covariance?.AddTensor(data, view, 1, stride);
    }
}

/// <summary>
/// One calibration run of the original model with the watched values appended to its outputs (see
/// <see cref="CalibrationCollector"/>): mean |activation| per channel, and the channel covariance where reconstruction
/// needs it. Memory is flat in the number of rows.
/// </summary>
internal static class ChannelStatistics
{
    public static Dictionary<string, ValueChannelStats> Collect(ModelGraph graph, IReadOnlyList<ChannelStatsRequest> requests,
        IDataFeed feed, CalibrationOptions options, CancellationToken cancellationToken)
    {
        var stats = new Dictionary<string, ValueChannelStats>(StringComparer.Ordinal);
        if (requests.Count == 0) return stats;
        var names = requests.Select(r => r.Value).Distinct(StringComparer.Ordinal).ToList();
        using var runner = ModelRunner.Load(CalibrationCollector.WithOutputs(graph, names), options.Runtime, options.Log, names);
        long rows = 0;
        foreach (var batch in feed.Batches(options.BatchSize, options.MaxRows))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var outputs = runner.Run(batch);
            foreach (var r in requests)
            {
                var t = outputs[r.Value];
                long n = t.Shape.Count > 0 ? t.Shape[0] : 1;
                long inner = t.Data.Length / Math.Max(1, n * r.Channels);
                if (t.Shape.Count < 2 || inner * n * r.Channels != t.Data.Length || (!r.Flattened && t.Shape[1] != r.Channels))
                    throw new InvalidOperationException($"'{r.Value}' is [{string.Join(",", t.Shape)}]; {r.Channels} channels were expected on axis 1.");
                if (!stats.TryGetValue(r.Value, out var s)) stats[r.Value] = s = new ValueChannelStats(r.Channels, r.Covariance);
                int stride = (int)Math.Max(1, inner / Math.Max(1, options.MaxVectorsPerRow));
                s.Add(t.Data, [n, r.Channels, inner], stride);
            }
            rows += batch.RowCount;
        }
        if (rows == 0) throw new InvalidOperationException($"the calibration data ({feed.Description}) gave no rows.");
        return stats;
    }
}
