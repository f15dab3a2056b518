using MLNetCompress.Quantization.Storage;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Quantization.Storage;

/// <summary>The quantization kernel against formulas recomputed with plain loops.</summary>
public class LowBitQuantizerTests
{
    private static (sbyte[] Codes, float[] Scales, float Error, StorageLayout Layout) Quantize(float[] w, long[] dims, int? axis, int? block, StorageFormat format)
    {
        var layout = new StorageLayout(dims, axis, block, format.ValuesPerByte());
        var codes = new sbyte[layout.StoredCount];
        var scales = new float[layout.ScaleCount];
        Assert.True(LowBitQuantizer.TryQuantize(w, layout, format, codes, scales, out float error));
        return (codes, scales, error, layout);
    }

    [Fact]
    public void Binary_IsSignTimesMeanMagnitudePerOutputChannel()
    {
        // A Conv weight [4, 3, 3, 3]: channel c's scale is the mean |w| of its 27 values, codes are the signs.
        var w = Gaussian(4 * 27, 11);
        w[5] = 0; // sign(0) = +1
        w[6] = -0f; // and so is sign(-0)
        var (codes, scales, error, layout) = Quantize(w, [4, 3, 3, 3], 0, null, StorageFormat.Binary);
        Assert.Equal((4, 1, 32), (layout.Channels, layout.Blocks, layout.Padded)); // 27 padded to whole bytes
        double worst = 0;
        for (int c = 0; c < 4; c++)
        {
            double mean = 0;
            for (int i = 0; i < 27; i++) mean += Math.Abs(w[c * 27 + i]);
            mean /= 27;
            Assert.True(Math.Abs(mean - scales[c]) <= 1e-6 * mean, $"channel {c}: scale {scales[c]} vs mean |w| {mean}");
            for (int i = 0; i < 27; i++)
            {
                Assert.Equal(w[c * 27 + i] >= 0 ? 1 : -1, codes[c * 32 + i]);
                worst = Math.Max(worst, Math.Abs(codes[c * 32 + i] * scales[c] - w[c * 27 + i]));
            }
        }
        Assert.Equal(worst, error, 5);
    }

    [Theory]
    [InlineData(StorageFormat.Int8, null)]
    [InlineData(StorageFormat.Int4, null)]
    [InlineData(StorageFormat.Int4, 16)]
    [InlineData(StorageFormat.Int2, null)]
    [InlineData(StorageFormat.Int2, 32)]
    public void IntegerCodes_ReconstructWithinHalfAScale_OnAMatMulWeight(StorageFormat format, int? block)
    {
        // MatMul B [40, 24]: channels are columns (axis 1), the reduction runs down the 40 rows (strided).
        var w = Gaussian(40 * 24, 12);
        var (codes, scales, error, layout) = Quantize(w, [40, 24], 1, block, format);
        int qmax = format.QMax(), blockSize = layout.BlockSize;
        Assert.Equal(block is int b ? (40 + b - 1) / b : 1, layout.Blocks);
        double worst = 0;
        for (int c = 0; c < 24; c++)
            for (int blockIndex = 0; blockIndex < layout.Blocks; blockIndex++)
            {
                double max = 0;
                for (int r = blockIndex * blockSize; r < Math.Min(40, (blockIndex + 1) * blockSize); r++) max = Math.Max(max, Math.Abs(w[r * 24 + c]));
                float s = scales[c * layout.Blocks + blockIndex];
                Assert.True(Math.Abs(max / qmax - s) <= 1e-6 * max / qmax, $"scale {s} vs max|w|/qmax {max / qmax}");
                for (int r = blockIndex * blockSize; r < Math.Min(40, (blockIndex + 1) * blockSize); r++)
                {
                    int q = codes[c * layout.Padded + r];
                    Assert.InRange(q, -qmax, qmax);
                    double e = Math.Abs(q * s - w[r * 24 + c]);
                    Assert.True(e <= s / 2 * (1 + 1e-5), $"[{r},{c}]: error {e} > scale/2 {s / 2}");
                    worst = Math.Max(worst, e);
                }
            }
        Assert.Equal(worst, error, 5);
    }

    [Fact]
    public void BlocksSplitTheReduction_AndPaddingCodesAreZero()
    {
        // 20 values per channel in blocks of 8: 3 blocks, the last holds 4 values and 4 padding codes.
        var w = Gaussian(3 * 20, 13);
        var (codes, scales, _, layout) = Quantize(w, [3, 20], 0, 8, StorageFormat.Int4);
        Assert.Equal((3, 8, 24), (layout.Blocks, layout.BlockSize, layout.Padded));
        Assert.Equal(9, scales.Length);
        for (int c = 0; c < 3; c++)
            for (int r = 20; r < 24; r++) Assert.Equal(0, codes[c * 24 + r]);
        // A block of zeros gets scale 1, so the codes are 0 and nothing divides by zero.
        var zeros = new float[3 * 20];
        var (zc, zs, ze, _) = Quantize(zeros, [3, 20], 0, 8, StorageFormat.Int2);
        Assert.All(zs, s => Assert.Equal(1f, s));
        Assert.All(zc, q => Assert.Equal(0, q));
        Assert.Equal(0f, ze);
    }

    [Fact]
    public void LargeWeights_SplitOverThreads_GiveTheSameCodesAsOneThread()
    {
        // 512 x 1024 is above the parallel threshold; each channel quantized alone must agree.
        var w = Gaussian(512 * 1024, 14);
        var (codes, scales, _, layout) = Quantize(w, [512, 1024], 0, 32, StorageFormat.Int4);
        var (oneCodes, oneScales, _, _) = Quantize(w.AsSpan(100 * 1024, 1024).ToArray(), [1, 1024], 0, 32, StorageFormat.Int4);
        Assert.Equal(oneScales, scales.AsSpan(100 * layout.Blocks, layout.Blocks).ToArray());
        Assert.Equal(oneCodes, codes.AsSpan(100 * layout.Padded, layout.Padded).ToArray());
    }

    [Theory]
    [InlineData(StorageFormat.Int2)]
    [InlineData(StorageFormat.Int4)]
    public void Clip_PicksAScaleNoLargerThanMax_WithNoMoreSquaredError(StorageFormat format)
    {
        var w = Gaussian(16 * 64, 16);
        var (plainCodes, plainScales, _, layout) = Quantize(w, [16, 64], 0, 32, format);
        var clipLayout = new StorageLayout([16, 64], 0, 32, format.ValuesPerByte());
        var codes = new sbyte[clipLayout.StoredCount];
        var scales = new float[clipLayout.ScaleCount];
        Assert.True(LowBitQuantizer.TryQuantize(w, clipLayout, format, codes, scales, out _, clip: true));
        double plainTotal = 0, clipTotal = 0;
        for (int k = 0; k < scales.Length; k++)
        {
            Assert.True(scales[k] <= plainScales[k] * (1 + 1e-6), $"block {k}: clipped scale {scales[k]} above max|w|/qmax {plainScales[k]}");
            Assert.True(scales[k] >= plainScales[k] * 0.2f * (1 - 1e-6), $"block {k}: scale {scales[k]} below the searched range");
            double plain = 0, clipped = 0;
            for (int i = 0; i < 32; i++)
            {
                int at = k * 32 + i; // [16, 64] in blocks of 32: block k is values 32k..32k+31
                Assert.InRange(codes[at], -format.QMax(), format.QMax());
                plain += Math.Pow(plainCodes[at] * plainScales[k] - w[at], 2);
                clipped += Math.Pow(codes[at] * scales[k] - w[at], 2);
            }
            Assert.True(clipped <= plain * (1 + 1e-5), $"block {k}: squared error {clipped} > {plain} without clipping");
            plainTotal += plain;
            clipTotal += clipped;
        }
        // On Gaussian weights the three int2 levels gain a lot from clipping.
        if (format == StorageFormat.Int2) Assert.True(clipTotal < 0.7 * plainTotal, $"{clipTotal} vs {plainTotal}");
    }

    [Theory]
    [InlineData(StorageFormat.UInt8, false, null)]
    [InlineData(StorageFormat.UInt8, true, null)]
    [InlineData(StorageFormat.UInt4, false, null)]
    [InlineData(StorageFormat.UInt4, true, null)]
    [InlineData(StorageFormat.UInt4, true, 16)]
    public void Asymmetric_MinMaxWithZeroPoint_WithinHalfAScale_AndZerosStayExact(StorageFormat format, bool perChannel, int? block)
    {
        // MatMul B [40, 24] (channels are columns): Gaussian, every 5th value an exact 0, column 3 all positive
        // and column 7 all negative (the range is widened to hold 0: zp = 0 and zp = qmax).
        var w = Gaussian(40 * 24, 17);
        for (int i = 0; i < w.Length; i += 5) w[i] = 0;
        for (int r = 0; r < 40; r++)
        {
            w[r * 24 + 3] = Math.Abs(w[r * 24 + 3]) + 0.1f;
            w[r * 24 + 7] = -Math.Abs(w[r * 24 + 7]) - 0.1f;
        }
        int? axis = perChannel ? 1 : null;
        var layout = new StorageLayout([40, 24], axis, block, format.ValuesPerByte());
        var codes = new sbyte[layout.StoredCount];
        var scales = new float[layout.ScaleCount];
        var offsets = new float[layout.ScaleCount];
        Assert.True(LowBitQuantizer.TryQuantize(w, layout, format, codes, scales, offsets, out float error));
        int qmax = format == StorageFormat.UInt8 ? 255 : 15;
        double worst = 0;
        for (int c = 0; c < layout.Channels; c++)
            for (int b = 0; b < layout.Blocks; b++)
            {
                // The values of this block: (row, column) pairs in storage order.
                var members = Enumerable.Range(b * layout.BlockSize, Math.Min(layout.BlockSize, layout.Reduction - b * layout.BlockSize))
                    .Select(r => (Code: c * layout.Padded + r, Source: (int)layout.SourceIndex(c, r))).ToList();
                double lo = Math.Min(0, members.Min(m => w[m.Source])), hi = Math.Max(0, members.Max(m => w[m.Source]));
                float s = scales[c * layout.Blocks + b], offset = offsets[c * layout.Blocks + b];
                Assert.True(Math.Abs((hi - lo) / qmax - s) <= 1e-6 * (hi - lo) / qmax, $"scale {s} vs (max - min)/qmax {(hi - lo) / qmax}");
                double zp = Math.Clamp(Math.Round(-lo / s, MidpointRounding.ToEven), 0, qmax);
                Assert.Equal(-(float)(zp * s), offset);
                if (perChannel && block is null && c == 3) Assert.Equal(0, zp);
                if (perChannel && block is null && c == 7) Assert.Equal(qmax, zp);
                foreach (var (code, source) in members)
                {
                    int q = (byte)codes[code];
                    Assert.InRange(q, 0, qmax);
                    float back = q * s + offset;
                    if (w[source] == 0) Assert.True(back == 0, $"0 at {source} came back as {back}");
                    double e = Math.Abs(back - w[source]);
                    Assert.True(e <= s / 2 * (1 + 1e-4), $"{source}: error {e} > scale/2 {s / 2}");
                    worst = Math.Max(worst, e);
                }
            }
        Assert.Equal(worst, error, 5);
    }

    [Fact]
    public void Asymmetric_NeedsOffsets_AndSymmetricTakesNone()
    {
        var w = Gaussian(64, 18);
        var layout = new StorageLayout([4, 16], 0, null, 2);
        Assert.Throws<ArgumentException>(() => LowBitQuantizer.TryQuantize(w, layout, StorageFormat.UInt4, new sbyte[layout.StoredCount], new float[4], out _));
        Assert.Throws<ArgumentException>(() => LowBitQuantizer.TryQuantize(w, layout, StorageFormat.Int4, new sbyte[layout.StoredCount], new float[4], new float[4], out _));
    }

    [Theory]
    [InlineData(StorageFormat.Int4)]
    [InlineData(StorageFormat.Binary)]
    [InlineData(StorageFormat.UInt4)]
    public void NaNOrInfinity_IsRefused(StorageFormat format)
    {
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity })
        {
            var w = Gaussian(64, 15);
            w[33] = bad;
            var layout = new StorageLayout([4, 16], 0, null, format.ValuesPerByte());
            var offsets = format.IsAsymmetric() ? new float[layout.ScaleCount] : null;
            Assert.False(LowBitQuantizer.TryQuantize(w, layout, format, new sbyte[layout.StoredCount], new float[layout.ScaleCount], offsets, out _));
        }
    }
}
