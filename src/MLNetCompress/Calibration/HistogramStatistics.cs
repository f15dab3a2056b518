using System.Buffers;
using System.Numerics.Tensors;

namespace MLNetCompress.Calibration;

/// <summary>
/// Streaming statistics of one tensor's values: exact minimum and maximum, a count, and a fixed-bin
/// histogram over the symmetric range <c>[-R, R]</c>. When a batch holds a value beyond <c>R</c>, the
/// range doubles (as often as needed) and neighbouring bins merge pairwise, so the histogram stays
/// exact at its resolution and memory is flat in the number of samples.
/// </summary>
/// <remarks>Doubling means the range is at most twice the largest magnitude seen: resolution is never
/// worse than half of what a histogram sized to the final range would have.</remarks>
public sealed class HistogramStatistics
{
    /// <summary>Default bin count: 4096 signed bins give 2048 bins of |x|, TensorRT's entropy setting.</summary>
    public const int DefaultBins = 4096;

    private const int ChunkLength = 8192;
    private readonly double[] _counts;
    private long _zerosBeforeRange;

    /// <summary>Creates empty statistics with <paramref name="bins"/> bins (even, at least 8).</summary>
    public HistogramStatistics(int bins = DefaultBins)
    {
        if (bins < 8 || bins % 4 != 0)
            throw new ArgumentOutOfRangeException(nameof(bins), $"the bin count must be a multiple of 4 and at least 8, not {bins}.");
        _counts = new double[bins];
    }

    /// <summary>Number of values seen (NaN excluded).</summary>
    public long Count { get; private set; }

    /// <summary>Smallest value seen (+∞ before any).</summary>
    public float Min { get; private set; } = float.PositiveInfinity;

    /// <summary>Largest value seen (−∞ before any).</summary>
    public float Max { get; private set; } = float.NegativeInfinity;

    /// <summary>Half-width of the histogram's range: bins cover <c>[-Range, Range]</c>; 0 while only zeros were seen.</summary>
    public float Range { get; private set; }

    /// <summary>Number of bins.</summary>
    public int Bins => _counts.Length;

    /// <summary>The tensor's shape in the first calibration batch (null when the statistics were built from raw values):
    /// what a layer is timed on when int8 and float are compared per layer.</summary>
    public IReadOnlyList<long>? FirstShape { get; internal set; }

    /// <summary>Width of one bin.</summary>
    public double BinWidth => 2.0 * Range / _counts.Length;

    /// <summary>Counts per bin, bin <c>i</c> covering <c>[-Range + i·w, -Range + (i+1)·w)</c>.</summary>
    public ReadOnlySpan<double> Counts => _counts;

    /// <summary>Adds values; NaN and infinities are rejected because no int8 range can hold them.</summary>
    /// <exception cref="ArgumentException">A value is NaN or infinite.</exception>
    public void Add(ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) return;
        float min = TensorPrimitives.Min(values);
        float max = TensorPrimitives.Max(values);
        if (!float.IsFinite(min) || !float.IsFinite(max))
            throw new ArgumentException("the tensor holds NaN or infinite values; it cannot be given an int8 range.", nameof(values));
        Min = MathF.Min(Min, min);
        Max = MathF.Max(Max, max);
        Count += values.Length;
        float maxAbs = MathF.Max(MathF.Abs(min), MathF.Abs(max));
        if (maxAbs == 0)
        {
            if (Range == 0) _zerosBeforeRange += values.Length;
            else AddBinned(values);
            return;
        }
        if (Range == 0)
        {
            Range = maxAbs;
            // Zeros seen before any range existed land in the bin that starts at 0.
            _counts[_counts.Length / 2] += _zerosBeforeRange;
            _zerosBeforeRange = 0;
        }
        while (Range < maxAbs) Double();
        AddBinned(values);
    }

    /// <summary>Counts of <c>|x|</c>: <see cref="Bins"/>/2 bins over <c>[0, Range]</c> (signed bins folded around 0).</summary>
    public double[] AbsoluteCounts()
    {
        int half = _counts.Length / 2;
        var abs = new double[half];
        for (int k = 0; k < half; k++) abs[k] = _counts[half + k] + _counts[half - 1 - k];
        if (_zerosBeforeRange > 0) abs[0] += _zerosBeforeRange;
        return abs;
    }

    /// <summary>The value below which <paramref name="fraction"/> of the samples lie, interpolated linearly inside its bin
    /// and clamped to [<see cref="Min"/>, <see cref="Max"/>].</summary>
    public float Quantile(double fraction)
    {
        if (Count == 0) throw new InvalidOperationException("no values were added.");
        if (!(fraction is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(fraction));
        if (Range == 0) return 0;
        double target = fraction * Count;
        double cumulative = 0;
        double width = BinWidth;
        for (int i = 0; i < _counts.Length; i++)
        {
            double c = _counts[i];
            if (c > 0 && cumulative + c >= target)
            {
                double inside = (target - cumulative) / c;
                double value = -Range + (i + inside) * width;
                return Math.Clamp((float)value, Min, Max);
            }
            cumulative += c;
        }
        return Max;
    }

    /// <summary>Merges bins pairwise into the middle half of the histogram and doubles the range.</summary>
    private void Double()
    {
        int n = _counts.Length;
        int quarter = n / 4;
        var merged = ArrayPool<double>.Shared.Rent(n / 2);
        try
        {
            for (int j = 0; j < n / 2; j++) merged[j] = _counts[2 * j] + _counts[2 * j + 1];
            Array.Clear(_counts);
            merged.AsSpan(0, n / 2).CopyTo(_counts.AsSpan(quarter, n / 2));
        }
        finally
        {
            ArrayPool<double>.Shared.Return(merged);
        }
        Range *= 2;
    }

    private void AddBinned(ReadOnlySpan<float> values)
    {
        int n = _counts.Length;
        float perUnit = n / (2f * Range);
        var buffer = ArrayPool<float>.Shared.Rent(Math.Min(values.Length, ChunkLength));
        try
        {
            for (int start = 0; start < values.Length; start += ChunkLength)
            {
                int len = Math.Min(ChunkLength, values.Length - start);
                var idx = buffer.AsSpan(0, len);
                // (x + R) · n / 2R, then floor: the bin index as a float, vectorized.
                TensorPrimitives.Add(values.Slice(start, len), Range, idx);
                TensorPrimitives.Multiply(idx, perUnit, idx);
                TensorPrimitives.Floor(idx, idx);
                foreach (float f in idx)
                {
                    int i = (int)f;
                    // x = R lands on n; rounding can push the edges one bin out.
                    _counts[i < 0 ? 0 : i >= n ? n - 1 : i]++;
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }
}
