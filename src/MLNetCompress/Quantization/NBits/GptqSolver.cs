using System.Numerics.Tensors;

namespace MLNetCompress.Quantization.NBits;

/// <summary>
/// GPTQ (Frantar et al., 2022) for a MatMul weight <c>W[K, N]</c> whose input <c>x</c> has second moment
/// <c>H = E[x·xᵀ]</c>: input rows are quantized in order, and each row's rounding error, divided by the diagonal of
/// the Cholesky factor <c>U</c> of <c>H⁻¹</c>, is spread over the rows not yet quantized
/// (<c>W[j] −= U[k,j] · err</c>), so that <c>‖X·W − X·Ŵ‖</c> stays small, not each weight. Updates inside a lazy block
/// are applied at once; the block's errors reach the later rows in one sweep after it. Block parameters (scale, zero
/// point) are taken from the rows as updated when the block starts.
/// </summary>
internal static class GptqSolver
{
    /// <summary>Quantizes <paramref name="weight"/> with error compensation; null when <paramref name="secondMoment"/>
    /// stays singular after damping (the caller falls back to round to nearest).</summary>
    /// <param name="weight">The float weight, <c>[K, N]</c> row-major (not modified).</param>
    /// <param name="secondMoment"><c>E[x·xᵀ]</c> of the MatMul's input, <c>K×K</c>.</param>
    /// <param name="k">Rows.</param>
    /// <param name="n">Columns.</param>
    /// <param name="bits">Bits per value.</param>
    /// <param name="blockSize">Rows per quantization block.</param>
    /// <param name="symmetric">Symmetric blocks.</param>
    /// <param name="damping">Added to the diagonal, as a fraction of its mean.</param>
    /// <param name="cancellation">Stops between rows.</param>
    public static BlockQuantizedWeight? Quantize(ReadOnlySpan<float> weight, ReadOnlySpan<double> secondMoment, int k, int n,
        int bits, int blockSize, bool symmetric, double damping, CancellationToken cancellation = default) =>
        Prepare(secondMoment, k, damping, cancellation) is { } h ? Quantize(weight, h, n, bits, blockSize, symmetric, cancellation) : null;

    /// <summary>What GPTQ needs of one input's statistics, computed once for every MatMul that reads the input: the
    /// inverse-Hessian factor and the inputs that are always zero.</summary>
    internal sealed record Hessian(int K, double[] U, bool[] Dead);

    /// <summary>Damps <paramref name="secondMoment"/> and factors its inverse; null when it stays singular.</summary>
    public static Hessian? Prepare(ReadOnlySpan<double> secondMoment, int k, double damping, CancellationToken cancellation = default)
    {
        if (secondMoment.Length != (long)k * k) throw new ArgumentException($"{secondMoment.Length} values for {k}×{k}", nameof(secondMoment));
        var h = secondMoment.ToArray();
        // An input that is always zero carries no information: its row is quantized to zero and kept out of H.
        double meanDiagonal = 0;
        for (int i = 0; i < k; i++) meanDiagonal += h[i * k + i];
        meanDiagonal /= k;
        if (!(meanDiagonal > 0) || !double.IsFinite(meanDiagonal)) return null;
        var dead = new bool[k];
        for (int i = 0; i < k; i++)
            if (h[i * k + i] <= 0)
            {
                h[i * k + i] = meanDiagonal;
                dead[i] = true;
            }
        for (int attempt = 0; attempt < 4; attempt++)
        {
            double added = damping * Math.Pow(10, attempt) * meanDiagonal;
            var damped = (double[])h.Clone();
            for (int i = 0; i < k; i++) damped[i * k + i] += added;
            if (InverseHessian.UpperCholeskyOfInverse(damped, k, cancellation) is { } u) return new Hessian(k, u, dead);
        }
        return null;
    }

    /// <summary>Quantizes <paramref name="weight"/> (<c>[K, N]</c>, not modified) against a prepared Hessian.</summary>
    public static BlockQuantizedWeight Quantize(ReadOnlySpan<float> weight, Hessian hessian, int n, int bits, int blockSize, bool symmetric,
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(hessian);
        int k = hessian.K;
        if (weight.Length != (long)k * n) throw new ArgumentException($"{weight.Length} values for [{k},{n}]", nameof(weight));
        var u = hessian.U;
        var w = weight.ToArray();
        for (int i = 0; i < k; i++)
            if (hessian.Dead[i]) w.AsSpan(i * n, n).Clear();

        var quantizer = new BlockQuantizer(k, n, bits, blockSize, symmetric);
        // The lazy block holds whole quantization blocks, so a block's rows are complete when its parameters are set.
        int lazy = Math.Max(128, blockSize) / blockSize * blockSize;
        var errors = new float[(long)lazy * n];
        var original = new float[n];
        for (int b0 = 0; b0 < k; b0 += lazy)
        {
            int b1 = Math.Min(k, b0 + lazy);
            for (int r = b0; r < b1; r++)
            {
                cancellation.ThrowIfCancellationRequested();
                if (r % blockSize == 0) quantizer.SetBlock(w, r / blockSize);
                var row = w.AsSpan(r * n, n);
                row.CopyTo(original);
                quantizer.QuantizeRow(row, r);
                // err = (w − ŵ) / U[r,r]; the rows after r in this lazy block take it now.
                var err = errors.AsSpan((r - b0) * n, n);
                TensorPrimitives.Subtract(original, row, err);
                TensorPrimitives.Multiply(err, (float)(1 / u[(long)r * k + r]), err);
                for (int j = r + 1; j < b1; j++)
                {
                    float f = (float)u[(long)r * k + j];
                    if (f != 0) TensorPrimitives.MultiplyAdd(err, -f, w.AsSpan(j * n, n), w.AsSpan(j * n, n));
                }
            }
            // W[b1:] −= U[b0:b1, b1:]ᵀ · Err
            for (int j = b1; j < k; j++)
            {
                var target = w.AsSpan(j * n, n);
                for (int r = b0; r < b1; r++)
                {
                    float f = (float)u[(long)r * k + j];
                    if (f != 0) TensorPrimitives.MultiplyAdd(errors.AsSpan((r - b0) * n, n), -f, target, target);
                }
            }
        }
        return quantizer.Result(weight);
    }
}
