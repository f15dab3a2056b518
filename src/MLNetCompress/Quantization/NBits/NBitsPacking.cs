namespace MLNetCompress.Quantization.NBits;

/// <summary>
/// The bit layout of <c>com.microsoft.MatMulNBits</c>: weights quantized in blocks of <c>blockSize</c> along K, stored
/// per output column as <c>B[N, kBlocks, blobSize]</c> uint8 with <c>blobSize = blockSize·bits/8</c>, values packed along
/// K lowest bits first; packed zero points <c>[N, ceil(kBlocks·bits/8)]</c> packed the same way along the blocks.
/// </summary>
public static class NBitsPacking
{
    /// <summary>Number of blocks along K: <c>ceil(k / blockSize)</c>.</summary>
    public static int BlockCount(int k, int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        return (k + blockSize - 1) / blockSize;
    }

    /// <summary>Bytes per block of one column: <c>blockSize·bits/8</c>.</summary>
    public static int BlobSize(int blockSize, int bits) => checked(blockSize * bits / 8);

    /// <summary>Bytes of packed zero points per column: <c>ceil(kBlocks·bits/8)</c>.</summary>
    public static int ZeroPointBytesPerColumn(int kBlocks, int bits) => (kBlocks * bits + 7) / 8;

    /// <summary>Checks that <paramref name="bits"/> is one MatMulNBits packs (2, 4 or 8: no value straddles a byte).</summary>
    public static void CheckBits(int bits)
    {
        if (bits is not (2 or 4 or 8))
            throw new ArgumentOutOfRangeException(nameof(bits), bits, "MatMulNBits packs 2, 4 or 8 bits.");
    }

    /// <summary>
    /// Packs quantized values given in the MatMul's <c>[K, N]</c> layout (<c>q[k·N + n]</c>, each in
    /// <c>[0, 2^bits)</c>) into <c>B[N, kBlocks, blobSize]</c>. Positions past K in the last block take
    /// <paramref name="pad"/>(n, block) (the block's zero point, so they dequantize to 0).
    /// </summary>
    public static void PackWeights(ReadOnlySpan<byte> q, int k, int n, int blockSize, int bits, Func<int, int, byte> pad, Span<byte> packed)
    {
        CheckBits(bits);
        ArgumentNullException.ThrowIfNull(pad);
        int blocks = BlockCount(k, blockSize), blob = BlobSize(blockSize, bits);
        if (q.Length != (long)k * n) throw new ArgumentException($"{q.Length} values for a [{k},{n}] weight", nameof(q));
        if (packed.Length != (long)n * blocks * blob) throw new ArgumentException($"{packed.Length} bytes, [{n},{blocks},{blob}] needed", nameof(packed));
        packed.Clear();
        int perByte = 8 / bits;
        for (int c = 0; c < n; c++)
            for (int b = 0; b < blocks; b++)
            {
                var dest = packed.Slice((c * blocks + b) * blob, blob);
                byte padValue = b * blockSize + blockSize > k ? pad(c, b) : (byte)0;
                for (int i = 0; i < blockSize; i++)
                {
                    int row = b * blockSize + i;
                    int v = row < k ? q[row * n + c] : padValue;
                    dest[i / perByte] |= (byte)(v << (i % perByte * bits));
                }
            }
    }

    /// <summary>The value at row <paramref name="row"/> (along K) of column <paramref name="column"/> in a packed <c>B</c>.</summary>
    public static int UnpackWeight(ReadOnlySpan<byte> packed, int k, int blockSize, int bits, int column, int row)
    {
        int blocks = BlockCount(k, blockSize), blob = BlobSize(blockSize, bits), perByte = 8 / bits;
        int b = row / blockSize, i = row % blockSize;
        byte v = packed[(column * blocks + b) * blob + i / perByte];
        return (v >> (i % perByte * bits)) & ((1 << bits) - 1);
    }

    /// <summary>Packs zero points given as <c>zp[n·kBlocks + b]</c> into <c>[N, ceil(kBlocks·bits/8)]</c>.</summary>
    public static void PackZeroPoints(ReadOnlySpan<byte> zeroPoints, int n, int kBlocks, int bits, Span<byte> packed)
    {
        CheckBits(bits);
        int perColumn = ZeroPointBytesPerColumn(kBlocks, bits), perByte = 8 / bits;
        if (zeroPoints.Length != (long)n * kBlocks) throw new ArgumentException($"{zeroPoints.Length} zero points for [{n},{kBlocks}]", nameof(zeroPoints));
        if (packed.Length != (long)n * perColumn) throw new ArgumentException($"{packed.Length} bytes, [{n},{perColumn}] needed", nameof(packed));
        packed.Clear();
        for (int c = 0; c < n; c++)
            for (int b = 0; b < kBlocks; b++)
                packed[c * perColumn + b / perByte] |= (byte)(zeroPoints[c * kBlocks + b] << (b % perByte * bits));
    }

    /// <summary>The zero point of block <paramref name="block"/> of column <paramref name="column"/> in packed zero points.</summary>
    public static int UnpackZeroPoint(ReadOnlySpan<byte> packed, int kBlocks, int bits, int column, int block)
    {
        int perColumn = ZeroPointBytesPerColumn(kBlocks, bits), perByte = 8 / bits;
        return (packed[column * perColumn + block / perByte] >> (block % perByte * bits)) & ((1 << bits) - 1);
    }
}
