using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace MLNetCompress.Pruning;

/// <summary>
/// The pruning kernels: the k-th smallest magnitude over one or many tensors without sorting them (a two-level
/// radix histogram over the bits of |w|, which order the same way as the magnitudes), zeroing exactly k values,
/// the standard deviation, and N:M groups.
/// </summary>
public static class MagnitudeSelection
{
    private const int Bins = 1 << 16;

    /// <summary>
    /// The k-th smallest |w| (1-based) over all values of <paramref name="tensors"/>, read in two passes with
    /// 2×65,536 counters and no copy of the values. NaN counts as larger than every number.
    /// </summary>
    /// <param name="tensors">The values.</param>
    /// <param name="k">Rank of the magnitude wanted, 1 ≤ k ≤ the number of values.</param>
    /// <param name="below">How many values have a magnitude strictly below the result.</param>
    public static float KthSmallestMagnitude(IReadOnlyList<ReadOnlyMemory<float>> tensors, long k, out long below)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        long total = tensors.Sum(t => (long)t.Length);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(k, total);
        var counts = ArrayPool<long>.Shared.Rent(Bins);
        try
        {
            // Level 1: the high 16 bits of |w| (sign cleared) pick the bin holding the k-th value.
            var hist = counts.AsSpan(0, Bins);
            hist.Clear();
            foreach (var t in tensors)
                foreach (uint bits in MemoryMarshal.Cast<float, uint>(t.Span))
                    hist[(int)((bits & 0x7FFF_FFFF) >> 16)]++;
            int high = Locate(hist, k, out long belowHigh);

            // Level 2: the low 16 bits among the values of that bin give the exact magnitude.
            hist.Clear();
            foreach (var t in tensors)
                foreach (uint bits in MemoryMarshal.Cast<float, uint>(t.Span))
                {
                    uint magnitude = bits & 0x7FFF_FFFF;
                    if ((int)(magnitude >> 16) == high) hist[(int)(magnitude & 0xFFFF)]++;
                }
            int low = Locate(hist, k - belowHigh, out long belowLow);
            below = belowHigh + belowLow;
            return BitConverter.UInt32BitsToSingle(((uint)high << 16) | (uint)low);
        }
        finally
        {
            ArrayPool<long>.Shared.Return(counts);
        }
    }

    // The bin where the running count reaches k, and the count before it.
    private static int Locate(ReadOnlySpan<long> hist, long k, out long before)
    {
        long seen = 0;
        for (int b = 0; b < hist.Length; b++)
        {
            if (seen + hist[b] >= k)
            {
                before = seen;
                return b;
            }
            seen += hist[b];
        }
        throw new InvalidOperationException("the histogram holds fewer values than k.");
    }

    /// <summary>
    /// Zeroes every value with |w| &lt; <paramref name="threshold"/> and, in index order, up to
    /// <paramref name="ties"/> values with |w| equal to it. Returns how many ties it used.
    /// </summary>
    public static long ZeroBelow(Span<float> values, float threshold, long ties)
    {
        uint limit = BitConverter.SingleToUInt32Bits(MathF.Abs(threshold));
        var bits = MemoryMarshal.Cast<float, uint>(values);
        long used = 0;
        for (int i = 0; i < bits.Length; i++)
        {
            uint magnitude = bits[i] & 0x7FFF_FFFF;
            if (magnitude < limit) bits[i] = 0;
            else if (magnitude == limit && used < ties)
            {
                bits[i] = 0;
                used++;
            }
        }
        return used;
    }

    /// <summary>Zeroes every value with |w| ≤ <paramref name="threshold"/> (the classic rule: keep |w| &gt; t).</summary>
    public static void ZeroAtOrBelow(Span<float> values, float threshold)
    {
        uint limit = BitConverter.SingleToUInt32Bits(MathF.Abs(threshold));
        var bits = MemoryMarshal.Cast<float, uint>(values);
        for (int i = 0; i < bits.Length; i++)
            if ((bits[i] & 0x7FFF_FFFF) <= limit) bits[i] = 0;
    }

    /// <summary>Population standard deviation (about the mean), accumulated in double a chunk at a time.</summary>
    public static double StandardDeviation(ReadOnlySpan<float> values)
    {
        if (values.Length == 0) return 0;
        const int Chunk = 4096;
        double sum = 0;
        for (int at = 0; at < values.Length; at += Chunk)
            sum += TensorPrimitives.Sum(values.Slice(at, Math.Min(Chunk, values.Length - at)));
        float mean = (float)(sum / values.Length);
        Span<float> tmp = stackalloc float[Chunk];
        double squares = 0;
        for (int at = 0; at < values.Length; at += Chunk)
        {
            var part = values.Slice(at, Math.Min(Chunk, values.Length - at));
            var centered = tmp[..part.Length];
            TensorPrimitives.Subtract(part, mean, centered);
            squares += TensorPrimitives.SumOfSquares(centered);
        }
        return Math.Sqrt(squares / values.Length);
    }

    /// <summary>
    /// N:M sparsity: the tensor is read as [outer, reduction, inner]; along the reduction axis every run of
    /// <paramref name="m"/> values (for each outer and inner position) keeps its <paramref name="n"/> largest
    /// magnitudes. Among equal magnitudes the later value is dropped first.
    /// </summary>
    /// <exception cref="ArgumentException">The reduction length is not a multiple of m, or m is above 64.</exception>
    public static void ApplyNM(Span<float> values, int outer, int reduction, int inner, int n, int m)
    {
        if (m is < 1 or > 64 || n < 0 || n > m) throw new ArgumentException($"{n}:{m} is not a pattern (need 0 ≤ N ≤ M ≤ 64).");
        if (reduction % m != 0) throw new ArgumentException($"the reduction axis has {reduction} values, not a multiple of {m}.");
        if ((long)outer * reduction * inner != values.Length) throw new ArgumentException("the layout does not cover the values.");
        Span<float> group = stackalloc float[m];
        int drop = m - n;
        for (int o = 0; o < outer; o++)
            for (int g = 0; g < reduction; g += m)
                for (int i = 0; i < inner; i++)
                {
                    int start = (o * reduction + g) * inner + i;
                    for (int j = 0; j < m; j++) group[j] = MathF.Abs(values[start + j * inner]);
                    for (int d = 0; d < drop; d++)
                    {
                        int smallest = -1;
                        for (int j = 0; j < m; j++)
                            if (!float.IsNegativeInfinity(group[j]) && (smallest < 0 || group[j] <= group[smallest])) smallest = j;
                        group[smallest] = float.NegativeInfinity; // taken
                        values[start + smallest * inner] = 0;
                    }
                }
    }

    /// <summary>Number of exact zeros (+0 and −0).</summary>
    public static long CountZeros(ReadOnlySpan<float> values)
    {
        long zeros = 0;
        foreach (float v in values)
            if (v == 0) zeros++;
        return zeros;
    }
}
