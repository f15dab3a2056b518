using MLNetCompress.Onnx;
using MLNetCompress.Quantization;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Quantization;

public class SymmetricInt8Tests
{
    private static WeightStorageChecks.StoredWeight Quantize(float[] w, long[] dims, int? axis, out float error)
    {
        var q = new sbyte[w.Length];
        var scales = new float[SymmetricInt8.ScaleCount(dims, axis)];
        Assert.True(SymmetricInt8.TryQuantize(w, dims, axis, q, scales, out error));
        var scaleDims = new long[axis is null ? 0 : dims.Length];
        if (axis is int a)
        {
            Array.Fill(scaleDims, 1L);
            scaleDims[a] = dims[a];
        }
        return new(q.Select(v => (float)v).ToArray(), scales, scaleDims, OnnxDataType.Int8, null!, null!);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(null)]
    public void EveryAxis_MatchesTheReferenceFormula(int? axis)
    {
        long[] dims = [6, 5, 4, 3];
        var w = Gaussian(6 * 5 * 4 * 3, 11, 0.3f);
        var stored = Quantize(w, dims, axis, out float error);
        double reference = AssertMatchesReference(w, dims, stored);
        Assert.Equal(reference, error, 6);

        var back = new float[w.Length];
        SymmetricInt8.Dequantize(stored.Quantized.Select(v => (sbyte)v).ToArray(), dims, axis, stored.Scales, back);
        for (int i = 0; i < w.Length; i++)
            Assert.True(Math.Abs(back[i] - w[i]) <= error * (1 + 1e-6), $"element {i}");
    }

    [Fact]
    public void LargeTensorPerTensor_UsesTheChunkedPath()
    {
        long[] dims = [300, 200];
        var w = Gaussian(300 * 200, 5);
        AssertMatchesReference(w, dims, Quantize(w, dims, null, out _));
        AssertMatchesReference(w, dims, Quantize(w, dims, 1, out _));
    }

    [Fact]
    public void RoundsHalfToEven_AndUsesTheFullRange()
    {
        // max|w| = 127 gives scale 1, so w/scale is the value itself.
        float[] w = [127, 0.5f, 1.5f, -0.5f, 2.5f, -127, -2.5f, 3.4f];
        var stored = Quantize(w, [8], null, out _);
        Assert.Equal([127f, 0, 2, 0, 2, -127, -2, 3], stored.Quantized);
        Assert.Equal(1f, stored.Scales[0]);
    }

    [Fact]
    public void ZeroChannel_GetsScaleOneAndZeros()
    {
        float[] w = [0, 0, 0, 1, -2, 3];
        var stored = Quantize(w, [2, 3], 0, out float error);
        Assert.Equal(1f, stored.Scales[0]);
        Assert.Equal(3f / 127, stored.Scales[1], 6);
        Assert.Equal([0f, 0, 0], stored.Quantized[..3]);
        Assert.True(error <= stored.Scales[1] / 2);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void NonFiniteValues_AreRefused(float bad)
    {
        float[] w = [1, 2, 3, bad, 5, 6];
        Assert.False(SymmetricInt8.TryQuantize(w, [2, 3], 1, new sbyte[6], new float[3], out _));
        Assert.False(SymmetricInt8.TryQuantize(w, [2, 3], 0, new sbyte[6], new float[2], out _));
        Assert.False(SymmetricInt8.TryQuantize(w, [2, 3], null, new sbyte[6], new float[1], out _));
    }

    [Fact]
    public void MismatchedBuffers_AreRejected()
    {
        var w = new float[12];
        Assert.Throws<ArgumentException>(() => SymmetricInt8.TryQuantize(w, [3, 5], 0, new sbyte[12], new float[3], out _));
        Assert.Throws<ArgumentException>(() => SymmetricInt8.TryQuantize(w, [3, 4], 0, new sbyte[11], new float[3], out _));
        Assert.Throws<ArgumentException>(() => SymmetricInt8.TryQuantize(w, [3, 4], 1, new sbyte[12], new float[3], out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => SymmetricInt8.TryQuantize(w, [3, 4], 2, new sbyte[12], new float[3], out _));
    }
}
