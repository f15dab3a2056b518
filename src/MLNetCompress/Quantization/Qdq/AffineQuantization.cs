using MLNetCompress.Calibration;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>The affine parameters of 8-bit activations and the int32 bias rule of QDQ quantization.</summary>
public static class AffineQuantization
{
    /// <summary>The integer range of an activation type.</summary>
    public static (int Min, int Max) Limits(QdqActivationType type) => type == QdqActivationType.U8 ? (0, 255) : (-128, 127);

    /// <summary>The 7-bit codes of uint8 activations read by a layer guarded with
    /// <see cref="KernelSafety.PairSumGuard.ReducedRangeActivations"/>: 127·127·2 stays inside int16.</summary>
    public static (int Min, int Max) ReducedRangeLimits => (0, 127);

    /// <summary>
    /// <c>scale = (max − min) / (qmax − qmin)</c>, <c>zero point = round(qmin − min / scale)</c> clamped: 0 is then exactly
    /// representable, and a range starting at 0 gets the type's minimum as zero point (what lets ONNX Runtime drop a
    /// Relu in front of the QuantizeLinear). An empty range gets scale 1.
    /// </summary>
    public static (float Scale, int ZeroPoint) Parameters(ActivationRange range, QdqActivationType type) =>
        Parameters(range, Limits(type));

    /// <summary>As <see cref="Parameters(ActivationRange, QdqActivationType)"/> onto the codes [qmin, qmax] (a reduced
    /// range: uint8 codes [0, 127] for 7-bit activations).</summary>
    public static (float Scale, int ZeroPoint) Parameters(ActivationRange range, (int Min, int Max) codes)
    {
        var (qmin, qmax) = codes;
        if (qmax <= qmin) throw new ArgumentException($"empty code range [{qmin}, {qmax}].", nameof(codes));
        float min = MathF.Min(range.Min, 0), max = MathF.Max(range.Max, 0);
        float scale = (max - min) / (qmax - qmin);
        if (!(scale > 0) || !float.IsFinite(scale)) return (1f, 0);
        int zp = (int)Math.Clamp(Math.Round(qmin - min / (double)scale, MidpointRounding.ToEven), qmin, qmax);
        return (scale, zp);
    }

    /// <summary>
    /// Quantizes a bias to int32 with <c>scale[c] = inputScale · weightScales[c]</c>, <c>q = round(b / scale)</c>.
    /// Returns false (the bias should stay float) when a value would not fit in int32.
    /// </summary>
    public static bool TryQuantizeBias(ReadOnlySpan<float> bias, float inputScale, ReadOnlySpan<float> weightScales,
        Span<int> quantized, Span<float> scales)
    {
        if (weightScales.Length != 1 && weightScales.Length != bias.Length)
            throw new ArgumentException($"{weightScales.Length} weight scales for a bias of {bias.Length}.", nameof(weightScales));
        for (int c = 0; c < bias.Length; c++)
        {
            float s = inputScale * weightScales[weightScales.Length == 1 ? 0 : c];
            scales[c] = s;
            double q = Math.Round(bias[c] / (double)s, MidpointRounding.ToEven);
            // int32 holds ±2^31; beyond it the accumulator's bias would wrap.
            if (!double.IsFinite(q) || q > int.MaxValue || q < int.MinValue) return false;
            quantized[c] = (int)q;
        }
        return true;
    }
}
