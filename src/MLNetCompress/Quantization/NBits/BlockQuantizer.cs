using System.Numerics.Tensors;

namespace MLNetCompress.Quantization.NBits;

/// <summary>
/// Blockwise n-bit quantization of a <c>[K, N]</c> weight along K, row by row so that GPTQ can change the rows
/// still to come. Asymmetric: the block's range, widened to hold 0, split into <c>2^bits − 1</c> steps, and an integer
/// zero point. Symmetric: the zero point is <c>2^(bits−1)</c> and the value of largest magnitude maps exactly to
/// <c>−2^(bits−1)</c> (the scale takes its sign), so no level is wasted — the convention of ONNX Runtime's quantizer.
/// </summary>
internal sealed class BlockQuantizer
{
    private readonly float[] scale, zeroPoint, low, high, work;

    public BlockQuantizer(int k, int n, int bits, int blockSize, bool symmetric)
    {
        NBitsPacking.CheckBits(bits);
        if (blockSize < 16 || (blockSize & (blockSize - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "the block size must be a power of two, at least 16.");
        K = k; N = n; Bits = bits; BlockSize = blockSize; Symmetric = symmetric;
        Blocks = NBitsPacking.BlockCount(k, blockSize);
        QMax = (1 << bits) - 1;
        Values = new byte[(long)k * n];
        Scales = new float[(long)n * Blocks];
        ZeroPoints = new byte[(long)n * Blocks];
        scale = new float[n]; zeroPoint = new float[n]; low = new float[n]; high = new float[n]; work = new float[n];
    }

    public int K { get; }
    public int N { get; }
    public int Bits { get; }
    public int BlockSize { get; }
    public int Blocks { get; }
    public bool Symmetric { get; }
    public int QMax { get; }
    public byte[] Values { get; }
    public float[] Scales { get; }
    public byte[] ZeroPoints { get; }

    /// <summary>Round to nearest: every block's parameters from the weight as it is.</summary>
    public static BlockQuantizedWeight RoundToNearest(ReadOnlySpan<float> w, int k, int n, int bits, int blockSize, bool symmetric)
    {
        var q = new BlockQuantizer(k, n, bits, blockSize, symmetric);
        var row = new float[n];
        for (int r = 0; r < k; r++)
        {
            if (r % blockSize == 0) q.SetBlock(w, r / blockSize);
            w.Slice(r * n, n).CopyTo(row);
            q.QuantizeRow(row, r);
        }
        return q.Result(w);
    }

    /// <summary>Sets the parameters of block <paramref name="block"/> from its rows of <paramref name="w"/> (the current values).</summary>
    public void SetBlock(ReadOnlySpan<float> w, int block)
    {
        int first = block * BlockSize, last = Math.Min(K, first + BlockSize);
        // The range always holds 0, so a zero weight stays exactly zero and the zero point is a level.
        low.AsSpan().Clear();
        high.AsSpan().Clear();
        for (int r = first; r < last; r++)
        {
            var row = w.Slice(r * N, N);
            TensorPrimitives.Min(row, low, low);
            TensorPrimitives.Max(row, high, high);
        }
        float half = 1 << (Bits - 1);
        for (int c = 0; c < N; c++)
        {
            float s, z;
            if (Symmetric)
            {
                float extreme = -low[c] >= high[c] ? low[c] : high[c];
                s = extreme / -half;
                z = half;
            }
            else
            {
                s = (high[c] - low[c]) / QMax;
                z = s == 0 ? 0 : Math.Clamp(MathF.Round(-low[c] / s), 0, QMax);
            }
            if (s == 0 || !float.IsFinite(s)) s = 1; // an all-zero block: any scale gives zeros
            scale[c] = s;
            zeroPoint[c] = z;
            Scales[(long)c * Blocks + block] = s;
            ZeroPoints[(long)c * Blocks + block] = (byte)z;
        }
    }

    /// <summary>Quantizes row <paramref name="r"/> with the current block's parameters; <paramref name="row"/> is replaced by
    /// the dequantized values.</summary>
    public void QuantizeRow(Span<float> row, int r)
    {
        TensorPrimitives.Divide(row, scale, work);
        TensorPrimitives.Round(work, work);
        TensorPrimitives.Add(work, zeroPoint, work);
        TensorPrimitives.Max(work, 0f, work);
        TensorPrimitives.Min(work, QMax, work);
        var dest = Values.AsSpan((int)((long)r * N), N);
        for (int c = 0; c < N; c++) dest[c] = (byte)work[c];
        TensorPrimitives.Subtract(work, zeroPoint, work);
        TensorPrimitives.Multiply(work, scale, row);
    }

    /// <summary>The finished weight, with its largest error against <paramref name="original"/>.</summary>
    public BlockQuantizedWeight Result(ReadOnlySpan<float> original)
    {
        var result = new BlockQuantizedWeight(K, N, Bits, BlockSize, Symmetric, Values, Scales, ZeroPoints, 0);
        double worst = 0;
        for (int r = 0; r < K; r++)
            for (int c = 0; c < N; c++)
                worst = Math.Max(worst, Math.Abs(original[r * N + c] - result.Dequantized(r, c)));
        return new BlockQuantizedWeight(K, N, Bits, BlockSize, Symmetric, Values, Scales, ZeroPoints, worst);
    }
}
