using MLNetCompress.Quantization.NBits;

namespace MLNetCompress.Tests.Quantization.NBits;

/// <summary>The MatMulNBits bit layout against bytes worked out by hand.</summary>
public class NBitsPackingTests
{
    [Fact]
    public void FourBits_TwoValuesPerByte_LowNibbleFirst_PerColumnBlocks_PaddedWithTheZeroPoint()
    {
        // K = 40, N = 2, block 32: two blocks per column, 16 bytes each; the second block has 8 real rows.
        const int k = 40, n = 2;
        var q = new byte[k * n];
        for (int r = 0; r < k; r++)
        {
            q[r * n] = (byte)(r % 16);        // column 0: 0,1,2,...,15,0,1,...
            q[r * n + 1] = (byte)(15 - r % 16); // column 1: 15,14,...
        }
        var packed = new byte[n * 2 * 16];
        NBitsPacking.PackWeights(q, k, n, 32, 4, (c, b) => (byte)(c == 0 ? 9 : 3), packed);
        // Column 0, block 0: rows (0,1) -> 0x10, rows (2,3) -> 0x32, ..., rows (14,15) -> 0xFE.
        Assert.Equal(0x10, packed[0]);
        Assert.Equal(0x32, packed[1]);
        Assert.Equal(0xFE, packed[7]);
        // Column 0, block 1 starts at byte 16: rows 32,33 hold 0,1 -> 0x10; rows 40.. are padding (9) -> 0x99.
        Assert.Equal(0x10, packed[16]);
        Assert.Equal(0x76, packed[19]); // rows 38, 39 hold 6, 7
        Assert.Equal(0x99, packed[20]);
        Assert.Equal(0x99, packed[31]);
        // Column 1 starts at byte 32: rows (0,1) hold 15, 14 -> 0xEF; its padding is 3 -> 0x33.
        Assert.Equal(0xEF, packed[32]);
        Assert.Equal(0x33, packed[63]);
        for (int c = 0; c < n; c++)
            for (int r = 0; r < k; r++) Assert.Equal(q[r * n + c], NBitsPacking.UnpackWeight(packed, k, 32, 4, c, r));
    }

    [Fact]
    public void TwoAndEightBits()
    {
        // bits 2: four values a byte, lowest first: 1,2,3,0 -> 1 | 2<<2 | 3<<4 | 0<<6 = 0x39.
        byte[] q2 = [.. Enumerable.Range(0, 16).Select(i => (byte)((i + 1) % 4))];
        var p2 = new byte[4];
        NBitsPacking.PackWeights(q2, 16, 1, 16, 2, (_, _) => 0, p2);
        Assert.Equal([0x39, 0x39, 0x39, 0x39], p2);
        // bits 8: one value a byte, unchanged along K.
        byte[] q8 = [.. Enumerable.Range(0, 16).Select(i => (byte)(200 + i))];
        var p8 = new byte[16];
        NBitsPacking.PackWeights(q8, 16, 1, 16, 8, (_, _) => 0, p8);
        Assert.Equal(q8, p8);
    }

    [Fact]
    public void ZeroPoints_PackedPerColumn_RoundedUpToWholeBytes()
    {
        // N = 2 columns of 3 blocks: ceil(3·4/8) = 2 bytes a column.
        byte[] zp = [1, 2, 3, 4, 5, 6];
        var packed = new byte[4];
        NBitsPacking.PackZeroPoints(zp, 2, 3, 4, packed);
        Assert.Equal([0x21, 0x03, 0x54, 0x06], packed);
        Assert.Equal(6, NBitsPacking.UnpackZeroPoint(packed, 3, 4, 1, 2));
        Assert.Equal(2, NBitsPacking.ZeroPointBytesPerColumn(3, 4));
        Assert.Equal(1, NBitsPacking.ZeroPointBytesPerColumn(4, 2));
    }
}
