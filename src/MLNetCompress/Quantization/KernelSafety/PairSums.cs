using System.Numerics;

namespace MLNetCompress.Quantization.KernelSafety;

/// <summary>
/// The bound behind <see cref="PairSumGuard"/>: a u8×s8 kernel without VNNI adds two products of one output channel into
/// int16, so two same-sign weight codes of that channel, each met by an activation code of up to
/// <see cref="MaxActivationCode"/>, must sum to at most <see cref="PairLimit"/> in magnitude. Pairs are adjacent in the
/// kernel's packing of the reduction axis, unknown to the file, so the bound is taken over <em>any</em> two weights of a
/// channel: the two largest positive ones and the two most negative ones.
/// </summary>
public static class PairSums
{
    /// <summary>The largest value of a signed 16-bit lane.</summary>
    public const int Int16Max = short.MaxValue;

    /// <summary>The largest activation code the kernel multiplies: uint8 codes reach 255, and int8 activations are shifted
    /// to uint8 (x XOR 0x80) by the x86 kernels, so theirs do too. The calibrated range cannot lower it: any input at or
    /// beyond the calibrated maximum gets code 255.</summary>
    public const int MaxActivationCode = 255;

    /// <summary>⌊32767 / <paramref name="maxActivationCode"/>⌋: the largest sum of two same-sign weight codes that cannot
    /// clip (128 for uint8 activations, 258 for 7-bit ones).</summary>
    public static int PairLimit(int maxActivationCode = MaxActivationCode)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxActivationCode, 1);
        return Int16Max / maxActivationCode;
    }

    /// <summary>
    /// For each channel along <paramref name="channelAxis"/>: the larger of (the sum of its two largest positive values)
    /// and (the sum of the magnitudes of its two most negative values). A channel with one value counts it once.
    /// </summary>
    /// <returns>False when a value is not finite.</returns>
    public static bool LargestSameSignPairs(ReadOnlySpan<float> values, ReadOnlySpan<long> dims, int channelAxis, Span<float> pairs)
    {
        var (_, channels, _) = Layout(values.Length, dims, channelAxis);
        if (pairs.Length != channels) throw new ArgumentException($"{pairs.Length} slots for {channels} channels.", nameof(pairs));
        var sums = new double[channels];
        if (!SameSignPairs(values, dims, channelAxis, sums)) return false;
        for (int c = 0; c < channels; c++) pairs[c] = (float)sums[c];
        return true;
    }

    /// <summary>The largest same-sign pair of int8 codes in any channel along <paramref name="channelAxis"/>, in codes
    /// (the quantity <see cref="PairLimit"/> bounds).</summary>
    public static int LargestCodePair(ReadOnlySpan<sbyte> codes, ReadOnlySpan<long> dims, int channelAxis)
    {
        var (_, channels, _) = Layout(codes.Length, dims, channelAxis);
        var sums = new double[channels];
        SameSignPairs(codes, dims, channelAxis, sums);
        return channels == 0 ? 0 : (int)sums.Max();
    }

    /// <summary>Per channel, max(two largest positive values summed, two most negative magnitudes summed); false when a value is not finite.</summary>
    private static bool SameSignPairs<T>(ReadOnlySpan<T> values, ReadOnlySpan<long> dims, int channelAxis, Span<double> pairs)
        where T : INumber<T>
    {
        var (outer, channels, inner) = Layout(values.Length, dims, channelAxis);
        // Top two per sign per channel, kept as magnitudes.
        var top = new double[channels * 4];
        for (int o = 0; o < outer; o++)
            for (int c = 0; c < channels; c++)
            {
                var run = values.Slice((o * channels + c) * inner, inner);
                ref double p1 = ref top[4 * c], p2 = ref top[4 * c + 1], n1 = ref top[4 * c + 2], n2 = ref top[4 * c + 3];
                foreach (T t in run)
                {
                    if (!T.IsFinite(t)) return false;
                    double v = double.CreateTruncating(t);
                    if (v > 0)
                    {
                        if (v > p1) { p2 = p1; p1 = v; }
                        else if (v > p2) p2 = v;
                    }
                    else if (v < 0)
                    {
                        double m = -v;
                        if (m > n1) { n2 = n1; n1 = m; }
                        else if (m > n2) n2 = m;
                    }
                }
            }
        for (int c = 0; c < channels; c++)
            pairs[c] = Math.Max(top[4 * c] + top[4 * c + 1], top[4 * c + 2] + top[4 * c + 3]);
        return true;
    }

    /// <summary>
    /// Widens <paramref name="scales"/> (one per channel, or one for the tensor: <paramref name="perChannel"/>) just
    /// enough that no channel's same-sign pair of codes exceeds <paramref name="limit"/>: a channel whose largest pair
    /// <c>P</c> would round past the limit gets <c>scale ≥ P / (limit − ½)</c> (two rounded codes then sum to at most
    /// <c>P / scale + 1 ≤ limit + ½</c>). Returns how many channels needed a wider scale.
    /// </summary>
    public static int WidenScales(ReadOnlySpan<float> pairs, bool perChannel, Span<float> scales, int limit)
    {
        if (perChannel && scales.Length != pairs.Length)
            throw new ArgumentException($"{scales.Length} scales for {pairs.Length} channels.", nameof(scales));
        if (!perChannel && scales.Length != 1) throw new ArgumentException("one scale expected per tensor.", nameof(scales));
        int raised = 0;
        float shared = scales[0];
        for (int c = 0; c < pairs.Length; c++)
        {
            float s = perChannel ? scales[c] : shared;
            if (!WouldExceed(pairs[c], s, limit)) continue;
            raised++;
            float need = pairs[c] / (limit - 0.5f);
            // One ulp up: the division above may round down.
            need = MathF.BitIncrement(need);
            if (perChannel) scales[c] = MathF.Max(scales[c], need);
            else shared = MathF.Max(shared, need);
        }
        if (!perChannel) scales[0] = shared;
        return raised;
    }

    /// <summary>True when a channel whose largest same-sign pair is <paramref name="pair"/> could reach more than
    /// <paramref name="limit"/> codes at <paramref name="scale"/>; the bound of the rounded pair (P / scale + 1).</summary>
    public static bool WouldExceed(float pair, float scale, int limit) => pair / scale + 1f > limit + 0.5f;

    private static (int Outer, int Channels, int Inner) Layout(int length, ReadOnlySpan<long> dims, int axis)
    {
        if (axis < 0 || axis >= dims.Length)
            throw new ArgumentOutOfRangeException(nameof(axis), $"axis {axis} is outside a tensor of rank {dims.Length}.");
        long outer = 1, inner = 1, count = 1;
        for (int k = 0; k < dims.Length; k++)
        {
            count = checked(count * dims[k]);
            if (k < axis) outer *= dims[k];
            if (k > axis) inner *= dims[k];
        }
        if (count != length) throw new ArgumentException($"shape [{string.Join(",", dims.ToArray())}] holds {count} values, not {length}.", nameof(dims));
        return ((int)outer, (int)dims[axis], (int)inner);
    }
}
