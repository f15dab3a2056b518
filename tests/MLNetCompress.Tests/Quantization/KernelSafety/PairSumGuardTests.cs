using MLNetCompress.Quantization;
using MLNetCompress.Quantization.KernelSafety;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.Quantization.KernelSafety;

/// <summary>The pair-sum bound and the guards, against brute force over every pair of weights.</summary>
public class PairSumGuardTests
{
    /// <summary>The largest |a + b| over every same-sign pair (a ≠ b by position) of each channel, by brute force.</summary>
    private static int BruteForceLargestPair(sbyte[] q, long[] dims, int channelAxis)
    {
        int channels = (int)dims[channelAxis];
        long inner = 1, outer = 1;
        for (int k = channelAxis + 1; k < dims.Length; k++) inner *= dims[k];
        for (int k = 0; k < channelAxis; k++) outer *= dims[k];
        int worst = 0;
        for (int c = 0; c < channels; c++)
        {
            var values = new List<int>();
            for (long o = 0; o < outer; o++)
                for (long i = 0; i < inner; i++) values.Add(q[(o * channels + c) * inner + i]);
            for (int a = 0; a < values.Count; a++)
                for (int b = a + 1; b < values.Count; b++)
                    if (Math.Sign(values[a]) == Math.Sign(values[b])) worst = Math.Max(worst, Math.Abs(values[a] + values[b]));
            if (values.Count == 1) worst = Math.Max(worst, Math.Abs(values[0]));
        }
        return worst;
    }

    public static TheoryData<long[], int, bool> Shapes => new()
    {
        { [16, 3, 7, 7], 0, true },   // Conv, per channel
        { [16, 3, 7, 7], 0, false },  // Conv, one scale
        { [24, 40], 1, true },        // MatMul [K, N]: channels on the last axis
        { [24, 40], 1, false },
        { [40, 24], 0, true },        // Gemm transB [N, K]
        { [2, 24, 40], 2, true },     // batched MatMul weight
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void PairSafeWeights_KeepEveryPairWithin128Codes_AndWidenNoMoreThanNeeded(long[] dims, int channelAxis, bool perChannel)
    {
        int count = (int)dims.Aggregate(1L, (a, b) => a * b);
        var values = TestTensors.RandomValues(count, 7);
        int? axis = perChannel ? channelAxis : null;
        int channels = (int)dims[channelAxis];

        var plain = new sbyte[count];
        var plainScales = new float[perChannel ? channels : 1];
        Assert.True(SymmetricInt8.TryQuantize(values, dims, axis, plain, plainScales, out _));
        int before = BruteForceLargestPair(plain, dims, channelAxis);
        Assert.True(before > 128, $"the random weights should be at risk ({before})");

        var q = new sbyte[count];
        var scales = new float[plainScales.Length];
        Assert.True(GuardedInt8.TryQuantize(values, dims, axis, channelAxis, PairSumGuard.PairSafeWeights, q, scales, out float error, out var outcome));
        Assert.Equal(before, outcome.LargestPairBefore);
        int after = BruteForceLargestPair(q, dims, channelAxis);
        Assert.Equal(after, outcome.LargestPairAfter);
        Assert.InRange(after, 120, 128); // safe, and not needlessly coarse
        Assert.True(outcome.AtRisk && outcome.Treated);
        // Widening never narrows a scale, and the codes are the plain rounding at the new scale.
        for (int c = 0; c < scales.Length; c++) Assert.True(scales[c] >= plainScales[c]);
        for (int i = 0; i < count; i++)
        {
            int c = perChannel ? ChannelOf(i, dims, channelAxis) : 0;
            Assert.Equal((sbyte)Math.Clamp(MathF.Round(values[i] / scales[c], MidpointRounding.ToEven), -127, 127), q[i]);
        }
        Assert.True(error <= scales.Max() / 2 + 1e-6f);
    }

    private static int ChannelOf(int index, long[] dims, int axis)
    {
        long inner = 1;
        for (int k = axis + 1; k < dims.Length; k++) inner *= dims[k];
        return (int)(index / inner % dims[axis]);
    }

    [Fact]
    public void SevenBitWeights_UseCodesWithin64()
    {
        long[] dims = [8, 4, 3, 3];
        var values = TestTensors.RandomValues(8 * 36, 3);
        var q = new sbyte[values.Length];
        var scales = new float[8];
        Assert.True(GuardedInt8.TryQuantize(values, dims, 0, 0, PairSumGuard.SevenBitWeights, q, scales, out _, out var outcome));
        Assert.Equal(64, q.Max(v => Math.Abs((int)v)));
        Assert.True(BruteForceLargestPair(q, dims, 0) <= 128);
        Assert.Equal(8, outcome.ChannelsWidened);
    }

    [Theory]
    [InlineData(PairSumGuard.None)]
    [InlineData(PairSumGuard.Uint8Weights)]
    [InlineData(PairSumGuard.ReducedRangeActivations)]
    public void GuardsThatKeepTheCodes_LeaveThemAs8Bit_ButReportTheRisk(PairSumGuard guard)
    {
        long[] dims = [8, 36];
        var values = TestTensors.RandomValues(8 * 36, 4);
        var expected = new sbyte[values.Length];
        Assert.True(SymmetricInt8.TryQuantize(values, dims, 0, expected, new float[8], out _));
        var q = new sbyte[values.Length];
        Assert.True(GuardedInt8.TryQuantize(values, dims, 0, 0, guard, q, new float[8], out _, out var outcome));
        Assert.Equal(expected, q);
        Assert.True(outcome.AtRisk);
        Assert.Equal(guard != PairSumGuard.None, outcome.Treated);
        Assert.Equal(BruteForceLargestPair(q, dims, 0), outcome.LargestPairAfter);
    }

    [Fact]
    public void AChannelWithOneDominantWeight_IsAlreadySafe_AndKeepsItsScale()
    {
        // 1.0 and then values ≤ 0.007: codes 127 and ≤ 1, so every same-sign pair is ≤ 128.
        var values = new float[] { 1f, 0.007f, -0.007f, 0.001f, -0.5f, 0.002f };
        var q = new sbyte[values.Length];
        var scales = new float[1];
        Assert.True(GuardedInt8.TryQuantize(values, [1, 6], 0, 0, PairSumGuard.PairSafeWeights, q, scales, out _, out var outcome));
        Assert.False(outcome.AtRisk);
        Assert.Equal(1f / 127, scales[0], 7);
        Assert.Equal(0, outcome.ChannelsWidened);
    }

    [Theory]
    [InlineData(255, 128)]
    [InlineData(127, 258)]
    public void PairLimit_IsInt16MaxOverTheLargestActivationCode(int code, int limit)
    {
        Assert.Equal(limit, PairSums.PairLimit(code));
        // The limit is tight: one more code would overflow a signed 16-bit lane.
        Assert.True(code * limit <= short.MaxValue);
        Assert.True(code * (limit + 1) > short.MaxValue);
    }

    [Fact]
    public void NonFiniteWeights_AreRefused()
    {
        var values = new float[] { 1, float.NaN, 2, 3 };
        Assert.False(GuardedInt8.TryQuantize(values, [2, 2], 0, 0, PairSumGuard.PairSafeWeights, new sbyte[4], new float[2], out _, out _));
    }
}
