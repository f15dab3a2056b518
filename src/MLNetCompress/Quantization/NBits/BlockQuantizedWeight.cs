namespace MLNetCompress.Quantization.NBits;

/// <summary>
/// A <c>[K, N]</c> weight quantized in blocks of <see cref="BlockSize"/> rows along K, one scale (and zero point) per
/// column and block: <c>w ≈ (q − zp) · scale</c>. Unpacked here; <see cref="NBitsPacking"/> lays it out for ONNX Runtime.
/// </summary>
public sealed class BlockQuantizedWeight
{
    internal BlockQuantizedWeight(int k, int n, int bits, int blockSize, bool symmetric, byte[] values, float[] scales, byte[] zeroPoints, double maxAbsError)
    {
        K = k; N = n; Bits = bits; BlockSize = blockSize; Symmetric = symmetric;
        Values = values; Scales = scales; ZeroPoints = zeroPoints; MaxAbsError = maxAbsError;
    }

    /// <summary>Rows (input features).</summary>
    public int K { get; }

    /// <summary>Columns (output features).</summary>
    public int N { get; }

    /// <summary>Bits per value.</summary>
    public int Bits { get; }

    /// <summary>Rows per block along K.</summary>
    public int BlockSize { get; }

    /// <summary>Blocks along K.</summary>
    public int BlockCount => NBitsPacking.BlockCount(K, BlockSize);

    /// <summary>Symmetric: every zero point is <c>2^(bits−1)</c> and none is stored.</summary>
    public bool Symmetric { get; }

    /// <summary>Quantized values in <c>[0, 2^bits)</c>, in the weight's <c>[K, N]</c> layout.</summary>
    public byte[] Values { get; }

    /// <summary>Scales, <c>[N, blocks]</c> row-major.</summary>
    public float[] Scales { get; }

    /// <summary>Zero points in <c>[0, 2^bits)</c>, <c>[N, blocks]</c> row-major.</summary>
    public byte[] ZeroPoints { get; }

    /// <summary>Largest <c>|w − (q − zp)·scale|</c> against the original weight.</summary>
    public double MaxAbsError { get; }

    /// <summary>The value the model computes for element (<paramref name="row"/>, <paramref name="column"/>).</summary>
    public float Dequantized(int row, int column)
    {
        int at = column * BlockCount + row / BlockSize;
        return (Values[(long)row * N + column] - ZeroPoints[at]) * Scales[at];
    }

    /// <summary>The whole dequantized weight, <c>[K, N]</c>.</summary>
    public float[] Dequantize()
    {
        var w = new float[(long)K * N];
        for (int r = 0; r < K; r++)
            for (int c = 0; c < N; c++) w[(long)r * N + c] = Dequantized(r, c);
        return w;
    }

    /// <summary><c>B[N, blocks, blockSize·bits/8]</c> as MatMulNBits reads it.</summary>
    public byte[] PackedValues()
    {
        var packed = new byte[(long)N * BlockCount * NBitsPacking.BlobSize(BlockSize, Bits)];
        int blocks = BlockCount;
        NBitsPacking.PackWeights(Values, K, N, BlockSize, Bits, (c, b) => ZeroPoints[c * blocks + b], packed);
        return packed;
    }

    /// <summary>Zero points packed <c>[N, ceil(blocks·bits/8)]</c>.</summary>
    public byte[] PackedZeroPoints()
    {
        var packed = new byte[(long)N * NBitsPacking.ZeroPointBytesPerColumn(BlockCount, Bits)];
        NBitsPacking.PackZeroPoints(ZeroPoints, N, BlockCount, Bits, packed);
        return packed;
    }

    /// <summary>Bytes stored: packed values, float scales and (unless symmetric) packed zero points.</summary>
    public long StoredBytes => (long)N * BlockCount * NBitsPacking.BlobSize(BlockSize, Bits) + 4L * Scales.Length
        + (Symmetric ? 0 : (long)N * NBitsPacking.ZeroPointBytesPerColumn(BlockCount, Bits));
}
