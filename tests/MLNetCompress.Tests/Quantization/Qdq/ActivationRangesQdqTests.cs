using MLNetCompress.Calibration;

namespace MLNetCompress.Tests.Quantization.Qdq;

/// <summary>Streaming histograms and the range methods, against references computed independently from the raw samples.</summary>
public class ActivationRangesQdqTests
{
    private static float[] Uniform(int n, float lo, float hi, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = lo + (float)rng.NextDouble() * (hi - lo);
        return x;
    }

    /// <summary>Laplace(0, 1) samples plus a few large outliers: a heavy tail.</summary>
    private static float[] HeavyTailed(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u = rng.NextDouble() - 0.5;
            x[i] = (float)(-Math.Sign(u) * Math.Log(1 - 2 * Math.Abs(u)));
        }
        for (int i = 0; i < 10; i++) x[i * 97] = 60f + i;
        return x;
    }

    /// <summary>Student-t samples with 2 degrees of freedom: the largest of 100k values is about a hundred times the typical one.</summary>
    private static float[] StudentT2(int n, int seed)
    {
        var rng = new Random(seed);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double z = Normal(), a = Normal(), b = Normal();
            x[i] = (float)(z / Math.Sqrt((a * a + b * b) / 2));
        }
        return x;
    }

    private static HistogramStatistics InBatches(float[] x, int batch)
    {
        var s = new HistogramStatistics();
        for (int at = 0; at < x.Length; at += batch) s.Add(x.AsSpan(at, Math.Min(batch, x.Length - at)));
        return s;
    }

    [Fact]
    public void Uniform_MinMaxEqualsTheBounds()
    {
        var x = Uniform(50_000, -2f, 3f, 1);
        var s = InBatches(x, 1000);
        var r = ActivationRanges.Choose(s, new RangeMethodOptions { Method = RangeMethod.MinMax });
        Assert.Equal(x.Min(), r.Min);
        Assert.Equal(x.Max(), r.Max);
        Assert.InRange(r.Min, -2f, -1.99f);
        Assert.InRange(r.Max, 2.99f, 3f);
        Assert.Equal(x.Length, s.Count);
        Assert.Equal(x.Length, s.Counts.ToArray().Sum(), 6);
    }

    [Fact]
    public void GrowingRange_RebinsWithoutLosingCounts_AndMemoryStaysFixed()
    {
        // Small values first, then ever larger ones: the range doubles several times.
        var s = new HistogramStatistics(1024);
        s.Add(new float[100]);
        var sample = new List<float>(new float[100]);
        for (int k = 0; k < 6; k++)
        {
            var batch = Uniform(2000, -MathF.Pow(4, k), MathF.Pow(4, k), k + 3);
            s.Add(batch);
            sample.AddRange(batch);
        }
        Assert.Equal(1024, s.Counts.Length);
        Assert.Equal(sample.Count, s.Counts.ToArray().Sum(), 6);
        Assert.InRange(s.Range, sample.Max(MathF.Abs), 2 * sample.Max(MathF.Abs));
        var sorted = sample.Order().ToArray();
        foreach (double f in new[] { 0.1, 0.5, 0.9 })
            Assert.InRange(s.Quantile(f), sorted[(int)(f * sorted.Length)] - 2 * s.BinWidth, sorted[(int)(f * sorted.Length)] + 2 * s.BinWidth);
    }

    [Theory]
    [InlineData(99.0)]
    [InlineData(99.9)]
    public void Percentile_EqualsASortBasedReference(double percentile)
    {
        var x = HeavyTailed(100_000, 5);
        var s = InBatches(x, 4096);
        var r = ActivationRanges.Choose(s, new RangeMethodOptions { Method = RangeMethod.Percentile, Percentile = percentile });
        var sorted = x.Order().ToArray();
        float hi = sorted[(int)Math.Ceiling(percentile / 100 * sorted.Length) - 1];
        float lo = sorted[(int)Math.Floor((1 - percentile / 100) * sorted.Length)];
        double tolerance = 1.5 * s.BinWidth;
        Assert.InRange(r.Max, hi - tolerance, hi + tolerance);
        Assert.InRange(r.Min, lo - tolerance, lo + tolerance);
    }

    [Theory]
    [InlineData(RangeMethod.Entropy)]
    [InlineData(RangeMethod.Mse)]
    public void HeavyTail_EntropyAndMse_ClipBelowTheMax(RangeMethod method)
    {
        var x = StudentT2(100_000, 9);
        var s = InBatches(x, 8192);
        var r = ActivationRanges.Choose(s, new RangeMethodOptions { Method = method });
        float max = x.Max(), min = x.Min();
        // Most of a t(2) sample lies within ±3: the threshold keeps that bulk and clips the far tail. Entropy clips hard;
        // MSE weighs the squared clipping error of the few tail values against 256-level rounding, so it clips less.
        float fraction = method == RangeMethod.Entropy ? 0.5f : 0.95f;
        Assert.InRange(r.Max, 1f, fraction * max);
        Assert.InRange(r.Min, fraction * min, -1f);
    }

    [Fact]
    public void Uniform_EntropyAndMse_KeepNearlyTheWholeRange()
    {
        // Nothing to clip in a uniform sample: both methods keep (almost) the full range.
        var x = Uniform(100_000, -1f, 1f, 2);
        var s = InBatches(x, 8192);
        foreach (var method in new[] { RangeMethod.Entropy, RangeMethod.Mse })
        {
            var r = ActivationRanges.Choose(s, new RangeMethodOptions { Method = method });
            Assert.InRange(r.Max, 0.9f, 1.0001f);
        }
    }

    [Fact]
    public void NonFinite_IsRejected_AndNonNegativeRangesStartAt0()
    {
        var s = new HistogramStatistics();
        Assert.Throws<ArgumentException>(() => s.Add([1f, float.NaN]));
        var relu = new HistogramStatistics();
        relu.Add(Uniform(1000, 0.5f, 4f, 3));
        var r = ActivationRanges.Choose(relu, new RangeMethodOptions { Method = RangeMethod.MinMax });
        Assert.Equal(0f, r.Min);
    }
}
