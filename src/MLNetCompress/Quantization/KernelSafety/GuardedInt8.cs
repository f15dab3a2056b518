namespace MLNetCompress.Quantization.KernelSafety;

/// <summary>
/// Symmetric int8 weights (<see cref="SymmetricInt8"/>) that cannot clip in a u8×s8 kernel without VNNI: quantizes as
/// usual, checks the largest same-sign pair of codes of each output channel against <see cref="PairSums.PairLimit"/>,
/// and where it could clip applies the <see cref="PairSumGuard"/>. Used by every int8 path that ONNX Runtime runs on
/// integer kernels (static QDQ, dynamic quantization, and their clustered-codebook forms).
/// </summary>
public static class GuardedInt8
{
    /// <summary>Quantizes <paramref name="values"/> and guards the result.</summary>
    /// <param name="values">The float weight.</param>
    /// <param name="dims">Its shape.</param>
    /// <param name="scaleAxis">The per-channel scale axis, or null for one scale.</param>
    /// <param name="channelAxis">The output-channel axis: the weights along the other axes share one accumulator.</param>
    /// <param name="guard">The guard.</param>
    /// <param name="quantized">Receives the codes.</param>
    /// <param name="scales">Receives the scales.</param>
    /// <param name="maxAbsError">The largest <c>|w − q·scale|</c>.</param>
    /// <param name="outcome">What was found and done.</param>
    /// <returns>False when a value is NaN or infinite.</returns>
    public static bool TryQuantize(ReadOnlySpan<float> values, ReadOnlySpan<long> dims, int? scaleAxis, int channelAxis,
        PairSumGuard guard, Span<sbyte> quantized, Span<float> scales, out float maxAbsError, out PairSumOutcome outcome)
    {
        if (scaleAxis is int a && a != channelAxis)
            throw new ArgumentException($"per-channel scales along axis {a} but output channels along axis {channelAxis}.", nameof(scaleAxis));
        if (!Enum.IsDefined(guard)) throw new ArgumentException($"unknown guard {guard}.", nameof(guard));
        int limit = PairSums.PairLimit();
        int channels = dims.Length == 0 ? 1 : checked((int)dims[channelAxis]);
        outcome = new PairSumOutcome(guard, 0, 0, limit, channels, 0);
        if (!SymmetricInt8.TryQuantize(values, dims, scaleAxis, quantized, scales, out maxAbsError)) return false;
        if (dims.Length == 0) return true;
        int before = PairSums.LargestCodePair(quantized, dims, channelAxis);
        outcome = outcome with { LargestPairBefore = before, LargestPairAfter = before };
        if (before <= limit || guard is PairSumGuard.None or PairSumGuard.Uint8Weights or PairSumGuard.ReducedRangeActivations)
            return true;

        int widened;
        var before8Bit = scales.ToArray();
        if (guard == PairSumGuard.SevenBitWeights)
        {
            // [-64, 64]: any two codes sum to at most 128.
            SymmetricInt8.TryQuantize(values, dims, scaleAxis, quantized, scales, out maxAbsError, SevenBitQMax);
            widened = scaleAxis is null ? 1 : channels;
        }
        else
        {
            var pairs = new float[channels];
            PairSums.LargestSameSignPairs(values, dims, channelAxis, pairs);
            widened = PairSums.WidenScales(pairs, scaleAxis is not null, scales, limit);
            SymmetricInt8.QuantizeWithScales(values, dims, scaleAxis, scales, quantized, out maxAbsError);
        }
        int after = PairSums.LargestCodePair(quantized, dims, channelAxis);
        // The bound is proved in PairSums.WidenScales; a violation here is a bug, never a model to write.
        if (after > limit)
            throw new InvalidOperationException($"the {guard} guard left a same-sign pair of {after} codes (limit {limit}).");
        double logSum = 0;
        for (int c = 0; c < scales.Length; c++) logSum += Math.Log(scales[c] / before8Bit[c]);
        outcome = outcome with { LargestPairAfter = after, ChannelsWidened = widened, MeanScaleGrowth = Math.Exp(logSum / scales.Length) };
        return true;
    }

    /// <summary>The largest code of 7-bit weights: 64 + 64 = 128 = <see cref="PairSums.PairLimit"/>.</summary>
    public const float SevenBitQMax = 64;
}
