using System.Buffers;
using System.Numerics.Tensors;

namespace MLNetCompress.Quantization;

/// <summary>
/// Symmetric int8 quantization of float values, per tensor or per channel along one axis:
/// <c>scale = max|w| / 127</c> for each channel and <c>q = round(w / scale)</c> (half to even, as
/// QuantizeLinear rounds) in [-127, 127], so <c>q * scale</c> is within <c>scale / 2</c> of <c>w</c>.
/// A channel of zeros gets scale 1 (its values are all 0 either way).
/// </summary>
public static class SymmetricInt8
{
    /// <summary>The largest quantized magnitude; -128 is never used so the range stays symmetric.</summary>
    public const float QMax = 127f;

    // Work buffers are this long at most, so a huge tensor quantized per tensor needs no huge temporary.
    private const int ChunkLength = 16 * 1024;

    /// <summary>Number of scales: <c>dims[axis]</c> per channel, or 1 per tensor (<paramref name="axis"/> null).</summary>
    public static int ScaleCount(ReadOnlySpan<long> dims, int? axis)
    {
        if (axis is not int a) return 1;
        if (a < 0 || a >= dims.Length)
            throw new ArgumentOutOfRangeException(nameof(axis), $"axis {a} is outside a tensor of rank {dims.Length}.");
        return checked((int)dims[a]);
    }

    /// <summary>
    /// Quantizes <paramref name="values"/> (shaped <paramref name="dims"/>, row-major) into
    /// <paramref name="quantized"/> and <paramref name="scales"/>. Returns false, leaving the outputs
    /// undefined, when a value is NaN or infinite; otherwise <paramref name="maxAbsError"/> is the largest
    /// <c>|w - q * scale|</c>.
    /// </summary>
    /// <param name="values">The float values.</param>
    /// <param name="dims">Their shape.</param>
    /// <param name="axis">The channel axis, or null for one scale for the whole tensor.</param>
    /// <param name="quantized">Receives q, as long as <paramref name="values"/>.</param>
    /// <param name="scales">Receives the scales, <see cref="ScaleCount"/> long.</param>
    /// <param name="maxAbsError">The largest absolute error of <c>q * scale</c> against the value.</param>
    public static bool TryQuantize(ReadOnlySpan<float> values, ReadOnlySpan<long> dims, int? axis,
        Span<sbyte> quantized, Span<float> scales, out float maxAbsError) =>
        TryQuantize(values, dims, axis, quantized, scales, out maxAbsError, QMax);

    /// <summary>As <see cref="TryQuantize(ReadOnlySpan{float}, ReadOnlySpan{long}, int?, Span{sbyte}, Span{float}, out float)"/>
    /// with codes in [-<paramref name="qMax"/>, <paramref name="qMax"/>] (64 for 7-bit weights).</summary>
    public static bool TryQuantize(ReadOnlySpan<float> values, ReadOnlySpan<long> dims, int? axis,
        Span<sbyte> quantized, Span<float> scales, out float maxAbsError, float qMax)
    {
        if (!(qMax >= 1 && qMax <= QMax)) throw new ArgumentOutOfRangeException(nameof(qMax), $"qMax must be in [1, {QMax}], not {qMax}.");
        var (outer, channels, inner) = Layout(values.Length, dims, axis);
        if (scales.Length != channels)
            throw new ArgumentException($"{scales.Length} scales for {channels} channels.", nameof(scales));
        maxAbsError = 0;
        if (values.Length == 0)
        {
            scales.Fill(1);
            return true;
        }
        if (!ChannelMaxima(values, outer, channels, inner, scales)) return false;

        // max|w| / qMax; an all-zero channel keeps a harmless scale of 1 instead of dividing by zero.
        TensorPrimitives.Divide(scales, qMax, scales);
        foreach (ref float s in scales)
            if (s == 0) s = 1;
        QuantizeWithScales(values, dims, axis, scales, quantized, out maxAbsError);
        return true;
    }

    /// <summary>
    /// Quantizes finite <paramref name="values"/> with the given <paramref name="scales"/> (positive, one per channel
    /// along <paramref name="axis"/> or one per tensor): <c>q = round(w / scale)</c>, half to even, saturated to
    /// [-127, 127]. <paramref name="maxAbsError"/> is the largest <c>|w - q * scale|</c>.
    /// </summary>
    public static void QuantizeWithScales(ReadOnlySpan<float> values, ReadOnlySpan<long> dims, int? axis,
        ReadOnlySpan<float> scales, Span<sbyte> quantized, out float maxAbsError)
    {
        var (outer, channels, inner) = Layout(values.Length, dims, axis);
        if (quantized.Length != values.Length)
            throw new ArgumentException($"{quantized.Length} quantized slots for {values.Length} values.", nameof(quantized));
        if (scales.Length != channels)
            throw new ArgumentException($"{scales.Length} scales for {channels} channels.", nameof(scales));
        maxAbsError = 0;
        if (values.Length == 0) return;
        var buffer = ArrayPool<float>.Shared.Rent(inner == 1 ? channels : Math.Min(inner, ChunkLength));
        try
        {
            float error = 0;
            if (inner == 1)
            {
                // Channels are the last axis: each row holds one value of every channel, so the kernels
                // work a row at a time against the whole scale vector.
                var tmp = buffer.AsSpan(0, channels);
                for (int o = 0; o < outer; o++)
                {
                    int at = o * channels;
                    error = MathF.Max(error, QuantizeSegment(values.Slice(at, channels), scales, quantized.Slice(at, channels), tmp));
                }
            }
            else
            {
                for (int o = 0; o < outer; o++)
                    for (int c = 0; c < channels; c++)
                    {
                        int start = (o * channels + c) * inner;
                        for (int done = 0; done < inner; done += ChunkLength)
                        {
                            int n = Math.Min(ChunkLength, inner - done);
                            error = MathF.Max(error, QuantizeSegment(values.Slice(start + done, n), scales[c],
                                quantized.Slice(start + done, n), buffer.AsSpan(0, n)));
                        }
                    }
            }
            maxAbsError = error;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    /// <summary>Computes <c>q * scale</c> along the same layout <c>TryQuantize</c> used.</summary>
    public static void Dequantize(ReadOnlySpan<sbyte> quantized, ReadOnlySpan<long> dims, int? axis,
        ReadOnlySpan<float> scales, Span<float> values)
    {
        var (outer, channels, inner) = Layout(quantized.Length, dims, axis);
        if (values.Length != quantized.Length)
            throw new ArgumentException($"{values.Length} value slots for {quantized.Length} quantized values.", nameof(values));
        if (scales.Length != channels)
            throw new ArgumentException($"{scales.Length} scales for {channels} channels.", nameof(scales));
        TensorPrimitives.ConvertChecked<sbyte, float>(quantized, values);
        if (inner == 1)
        {
            for (int o = 0; o < outer; o++)
            {
                var row = values.Slice(o * channels, channels);
                TensorPrimitives.Multiply(row, scales, row);
            }
            return;
        }
        for (int o = 0; o < outer; o++)
            for (int c = 0; c < channels; c++)
            {
                var segment = values.Slice((o * channels + c) * inner, inner);
                TensorPrimitives.Multiply(segment, scales[c], segment);
            }
    }

    /// <summary>The tensor as [outer, channels, inner] around the channel axis (per tensor: [1, 1, n]).</summary>
    private static (int Outer, int Channels, int Inner) Layout(int length, ReadOnlySpan<long> dims, int? axis)
    {
        long count = 1;
        foreach (long d in dims)
        {
            if (d < 0) throw new ArgumentException($"shape [{string.Join(",", dims.ToArray())}] has a negative dimension.", nameof(dims));
            count = checked(count * d);
        }
        if (count != length)
            throw new ArgumentException($"shape [{string.Join(",", dims.ToArray())}] holds {count} values, not {length}.", nameof(dims));
        if (axis is not int a) return (1, 1, length);
        int channels = ScaleCount(dims, a);
        long outer = 1;
        for (int k = 0; k < a; k++) outer *= dims[k];
        long inner = 1;
        for (int k = a + 1; k < dims.Length; k++) inner *= dims[k];
        return ((int)outer, channels, (int)inner);
    }

    /// <summary>Writes max|w| of each channel into <paramref name="maxima"/>; false when a value is not finite.</summary>
    private static bool ChannelMaxima(ReadOnlySpan<float> values, int outer, int channels, int inner, Span<float> maxima)
    {
        maxima.Clear();
        if (inner == 1)
        {
            // Element-wise MaxMagnitude keeps the signed value of larger magnitude; Abs at the end.
            for (int o = 0; o < outer; o++)
                TensorPrimitives.MaxMagnitude(values.Slice(o * channels, channels), maxima, maxima);
            TensorPrimitives.Abs(maxima, maxima);
        }
        else
        {
            for (int o = 0; o < outer; o++)
                for (int c = 0; c < channels; c++)
                {
                    float m = MathF.Abs(TensorPrimitives.MaxMagnitude(values.Slice((o * channels + c) * inner, inner)));
                    // MathF.Max propagates NaN, so a NaN value is seen below.
                    maxima[c] = MathF.Max(maxima[c], m);
                }
        }
        // NaN and infinity both make the largest maximum non-finite.
        return maxima.Length == 0 || float.IsFinite(TensorPrimitives.Max(maxima));
    }

    /// <summary>Quantizes a run of values with one scale per element (a row against all channels).</summary>
    private static float QuantizeSegment(ReadOnlySpan<float> w, ReadOnlySpan<float> scales, Span<sbyte> q, Span<float> tmp)
    {
        TensorPrimitives.Divide(w, scales, tmp);
        TensorPrimitives.Round(tmp, MidpointRounding.ToEven, tmp);
        TensorPrimitives.ConvertSaturating(tmp, q);
        TensorPrimitives.Multiply(tmp, scales, tmp);
        TensorPrimitives.Subtract(w, tmp, tmp);
        return MathF.Abs(TensorPrimitives.MaxMagnitude(tmp));
    }

    /// <summary>Quantizes a run of values of one channel.</summary>
    private static float QuantizeSegment(ReadOnlySpan<float> w, float scale, Span<sbyte> q, Span<float> tmp)
    {
        TensorPrimitives.Divide(w, scale, tmp);
        TensorPrimitives.Round(tmp, MidpointRounding.ToEven, tmp);
        TensorPrimitives.ConvertSaturating(tmp, q);
        TensorPrimitives.Multiply(tmp, scale, tmp);
        TensorPrimitives.Subtract(w, tmp, tmp);
        return MathF.Abs(TensorPrimitives.MaxMagnitude(tmp));
    }
}
