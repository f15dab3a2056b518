using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace MLNetCompress.Quantization.Storage;

/// <summary>
/// Quantizes a float weight into the codes and scales of a <see cref="StorageFormat"/>, block by block in
/// <see cref="StorageLayout"/> order. Integer formats: <c>scale = max|w| / QMax</c> over the block (1 for a
/// block of zeros) and <c>q = round(w / scale)</c>, half to even, so <c>|q · scale − w| ≤ scale / 2</c>.
/// Binary: <c>scale = mean|w|</c> over the block and <c>q = w ≥ 0 ? +1 : −1</c> (XNOR-Net). Padding codes are
/// 0 (binary: +1); they are sliced away at load. With <c>clip</c>, an integer block's scale is instead the one of
/// <c>max|w| / QMax · {1, 0.95, …, 0.2}</c> with the smallest squared error: the largest values clip, the rest get
/// finer steps (what makes 2-bit usable).
/// Asymmetric formats (uint8, uint4): the block's range <c>[min(0, min w), max(0, max w)]</c>, <c>scale = (max − min) / QMax</c>
/// (1 for a block of zeros), zero point <c>zp = clamp(round(−min / scale), 0, QMax)</c> and
/// <c>q = clamp(round(w / scale) + zp, 0, QMax)</c>; the weight comes back as <c>q · scale + offset</c> with
/// <c>offset = −(zp · scale)</c>, so <c>|error| ≤ scale / 2</c> and, the range always holding 0, an exact 0 stays exactly 0
/// (its code is zp, and <c>zp · scale − zp · scale</c> is 0 in float). Their padding codes are zp.
/// </summary>
public static class LowBitQuantizer
{
    // Below this many values the work is not split over threads.
    private const long ParallelThreshold = 1 << 18;

    /// <summary>
    /// Fills <paramref name="codes"/> (<see cref="StorageLayout.StoredCount"/> long, storage order) and
    /// <paramref name="scales"/> (<see cref="StorageLayout.ScaleCount"/> long, [channel, block]). Returns false,
    /// leaving them undefined, when a value is NaN or infinite; otherwise <paramref name="maxAbsError"/> is the
    /// largest <c>|w − q · scale|</c> over the weight's own values.
    /// </summary>
    /// <param name="values">The weight, in its original row-major layout.</param>
    /// <param name="layout">Where each value goes.</param>
    /// <param name="format">The bits per value and their meaning.</param>
    /// <param name="codes">Receives the quantized values, one per stored slot.</param>
    /// <param name="scales">Receives one scale per block.</param>
    /// <param name="maxAbsError">The largest absolute error of the reconstruction.</param>
    /// <param name="clip">Search the scale of integer blocks for the smallest squared error instead of using max|w| / QMax.</param>
    public static bool TryQuantize(float[] values, StorageLayout layout, StorageFormat format, sbyte[] codes, float[] scales, out float maxAbsError,
        bool clip = false) =>
        TryQuantize(values, layout, format, codes, scales, null, out maxAbsError, clip);

    /// <summary>
    /// As the other overload, and for the asymmetric formats also fills <paramref name="offsets"/> (one per block,
    /// <c>−zp · scale</c>); the reconstruction is then <c>q · scale + offset</c>, computed as a multiply then an add.
    /// </summary>
    /// <param name="values">The weight, in its original row-major layout.</param>
    /// <param name="layout">Where each value goes.</param>
    /// <param name="format">The bits per value and their meaning.</param>
    /// <param name="codes">Receives the quantized values, one per stored slot (a uint8 code as its byte's bits).</param>
    /// <param name="scales">Receives one scale per block.</param>
    /// <param name="offsets">Receives one offset per block; required for uint8 and uint4, must be null for the others.</param>
    /// <param name="maxAbsError">The largest absolute error of the reconstruction.</param>
    /// <param name="clip">Search the scale of symmetric integer blocks for the smallest squared error instead of using max|w| / QMax.</param>
    public static bool TryQuantize(float[] values, StorageLayout layout, StorageFormat format, sbyte[] codes, float[] scales, float[]? offsets,
        out float maxAbsError, bool clip = false)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(codes);
        ArgumentNullException.ThrowIfNull(scales);
        if ((long)layout.Channels * layout.Reduction != values.Length)
            throw new ArgumentException($"the layout holds {(long)layout.Channels * layout.Reduction} values, not {values.Length}.", nameof(values));
        if (codes.LongLength != layout.StoredCount)
            throw new ArgumentException($"{codes.Length} code slots for {layout.StoredCount} stored values.", nameof(codes));
        if (scales.Length != layout.ScaleCount)
            throw new ArgumentException($"{scales.Length} scales for {layout.ScaleCount} blocks.", nameof(scales));
        if (format.IsAsymmetric() != offsets is not null)
            throw new ArgumentException($"{format.Name()} {(offsets is null ? "needs" : "takes no")} offsets.", nameof(offsets));
        if (offsets is not null && offsets.Length != layout.ScaleCount)
            throw new ArgumentException($"{offsets.Length} offsets for {layout.ScaleCount} blocks.", nameof(offsets));

        var errors = new float[layout.Channels];
        bool finite = true;
        if (values.LongLength < ParallelThreshold || layout.Channels < 2)
        {
            finite = QuantizeChannels(values, layout, format, clip, codes, scales, offsets, errors, 0, layout.Channels);
        }
        else
        {
            // Channels are independent: split them into a few ranges, one work buffer per range.
            int ranges = Math.Min(layout.Channels, Environment.ProcessorCount * 4);
            Parallel.For(0, ranges, k =>
            {
                int from = (int)((long)layout.Channels * k / ranges), to = (int)((long)layout.Channels * (k + 1) / ranges);
                if (!QuantizeChannels(values, layout, format, clip, codes, scales, offsets, errors, from, to)) Volatile.Write(ref finite, false);
            });
        }
        maxAbsError = errors.Length == 0 ? 0 : TensorPrimitives.Max(errors);
        return finite;
    }

    private static bool QuantizeChannels(float[] values, StorageLayout layout, StorageFormat format, bool clip, sbyte[] codes, float[] scales,
        float[]? offsets, float[] errors, int from, int to)
    {
        int padded = layout.Padded, reduction = layout.Reduction, block = layout.BlockSize;
        var buffer = ArrayPool<float>.Shared.Rent(padded + block);
        try
        {
            var channel = buffer.AsSpan(0, padded);
            var tmp = buffer.AsSpan(padded, block);
            for (int c = from; c < to; c++)
            {
                layout.Gather(values, c, channel[..reduction]);
                channel[reduction..].Clear();
                float error = 0;
                for (int b = 0; b < layout.Blocks; b++)
                {
                    int start = b * block, real = Math.Min(block, reduction - start);
                    var w = channel.Slice(start, block);
                    var q = codes.AsSpan((int)((long)c * padded + start), block);
                    int k = c * layout.Blocks + b;
                    float e = format == StorageFormat.Binary ? QuantizeBinary(w, real, q, tmp, out scales[k])
                        : offsets is not null ? QuantizeAsymmetric(w, real, format.QMax(), q, tmp, out scales[k], out offsets[k])
                        : QuantizeInteger(w, real, format.QMax(), clip, q, tmp, out scales[k]);
                    if (!float.IsFinite(e)) return false;
                    error = MathF.Max(error, e);
                }
                errors[c] = error;
            }
            return true;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    /// <summary>Symmetric integer codes of one block; returns the largest error over its <paramref name="real"/> values (NaN when one is not finite).</summary>
    private static float QuantizeInteger(ReadOnlySpan<float> w, int real, int qmax, bool clip, Span<sbyte> q, Span<float> tmp, out float scale)
    {
        float max = real > 0 ? MathF.Abs(TensorPrimitives.MaxMagnitude(w[..real])) : 0;
        if (!float.IsFinite(max))
        {
            scale = float.NaN;
            return float.NaN;
        }
        // A block of zeros keeps a harmless scale of 1 instead of dividing by zero.
        scale = max == 0 ? 1 : max / qmax;
        if (clip && max > 0)
        {
            float full = scale, best = float.PositiveInfinity;
            for (int k = 0; k <= ClipSteps; k++)
            {
                float candidate = full * (1 - k * 0.05f);
                RoundClamped(w[..real], candidate, qmax, tmp[..real]);
                TensorPrimitives.Multiply(tmp[..real], candidate, tmp[..real]);
                float error = TensorPrimitives.Distance(tmp[..real], w[..real]);
                if (error < best)
                {
                    best = error;
                    scale = candidate;
                }
            }
        }
        RoundClamped(w, scale, qmax, tmp);
        TensorPrimitives.ConvertSaturating(tmp, q);
        if (real == 0) return 0;
        var used = tmp[..real];
        TensorPrimitives.Multiply(used, scale, used);
        TensorPrimitives.Subtract(w[..real], used, used);
        return MathF.Abs(TensorPrimitives.MaxMagnitude(used));
    }

    // Scales tried by clipping: max|w| / qmax times 1, 0.95, ..., 0.2.
    private const int ClipSteps = 16;

    /// <summary><c>clamp(round(w / scale), −qmax, qmax)</c>, half to even, into <paramref name="q"/>.</summary>
    private static void RoundClamped(ReadOnlySpan<float> w, float scale, int qmax, Span<float> q)
    {
        TensorPrimitives.Divide(w, scale, q);
        TensorPrimitives.Round(q, MidpointRounding.ToEven, q);
        // max / (max / qmax) can land a hair above qmax in float; it must not round past it.
        TensorPrimitives.Min(q, qmax, q);
        TensorPrimitives.Max(q, -qmax, q);
    }

    /// <summary>Unsigned codes with a zero point of one block; returns the largest error over its <paramref name="real"/> values (NaN when one is not finite).</summary>
    private static float QuantizeAsymmetric(ReadOnlySpan<float> w, int real, int qmax, Span<sbyte> q, Span<float> tmp, out float scale, out float offset)
    {
        // The range always holds 0, so that a zero weight's code is exactly the zero point.
        float min = real > 0 ? MathF.Min(0, TensorPrimitives.Min(w[..real])) : 0;
        float max = real > 0 ? MathF.Max(0, TensorPrimitives.Max(w[..real])) : 0;
        float range = max - min;
        if (!float.IsFinite(range))
        {
            scale = offset = float.NaN;
            return float.NaN;
        }
        scale = range == 0 ? 1 : range / qmax;
        float zp = Math.Clamp(MathF.Round(-min / scale, MidpointRounding.ToEven), 0, qmax);
        // Negated after the product, so that zp · scale + offset is exactly 0 in float.
        offset = -(zp * scale);
        TensorPrimitives.Divide(w, scale, tmp);
        TensorPrimitives.Round(tmp, MidpointRounding.ToEven, tmp);
        TensorPrimitives.Add(tmp, zp, tmp);
        // round(w / scale) and round(−min / scale) can both round up at the ends of the range: clamp to the codes.
        TensorPrimitives.Min(tmp, qmax, tmp);
        TensorPrimitives.Max(tmp, 0, tmp);
        // Codes up to 255 go into the sbyte slots as their byte's bits.
        TensorPrimitives.ConvertSaturating(tmp, MemoryMarshal.Cast<sbyte, byte>(q));
        if (real == 0) return 0;
        // The error as the load computes the weight: a multiply, then an add (no fused multiply-add).
        var used = tmp[..real];
        TensorPrimitives.Multiply(used, scale, used);
        TensorPrimitives.Add(used, offset, used);
        TensorPrimitives.Subtract(w[..real], used, used);
        return MathF.Abs(TensorPrimitives.MaxMagnitude(used));
    }

    /// <summary>Sign codes and the mean magnitude of one block; returns the largest error (NaN when a value is not finite).</summary>
    private static float QuantizeBinary(ReadOnlySpan<float> w, int real, Span<sbyte> q, Span<float> tmp, out float scale)
    {
        scale = real > 0 ? TensorPrimitives.SumOfMagnitudes(w[..real]) / real : 0;
        if (!float.IsFinite(scale)) return float.NaN;
        // Branch-free sign: 1 | (sign bit spread) is +1 or -1; adding +0 turns -0 into +0, so sign(0) = +1 either way.
        for (int i = 0; i < w.Length; i++) q[i] = (sbyte)(1 | (BitConverter.SingleToInt32Bits(w[i] + 0f) >> 31));
        if (real == 0) return 0;
        // sign(w) · scale has w's sign, so the error is | |w| − scale |.
        var used = tmp[..real];
        TensorPrimitives.Abs(w[..real], used);
        TensorPrimitives.Subtract(used, scale, used);
        return MathF.Abs(TensorPrimitives.MaxMagnitude(used));
    }
}
