using System.Numerics.Tensors;

namespace MLNetCompress.Pruning;

/// <summary>
/// The closed-form re-fit of a pruned layer's kept weights: for each output row w with kept index set S, the ŵ_S
/// minimizing ‖Xw − X_S ŵ_S‖² + λ‖ŵ_S − w_S‖², i.e. (H_SS + λI) ŵ_S = H_S,: w + λ w_S with H = XᵀX. The damping pulls
/// towards the original weights (λ→∞ gives back plain magnitude pruning) and keeps the system positive definite when
/// calibration has fewer vectors than inputs. Solved by Cholesky in double, one row at a time.
/// </summary>
internal static class ReconstructionSolver
{
    /// <summary>
    /// Re-fits the rows of a layer in place.
    /// </summary>
    /// <param name="h">XᵀX (any positive scale), row-major <paramref name="d"/>×<paramref name="d"/>.</param>
    /// <param name="d">Inputs per row (the reduction length).</param>
    /// <param name="original">The weights before pruning.</param>
    /// <param name="pruned">The pruned weights: zeros are the pruned positions; the kept ones are overwritten.</param>
    /// <param name="rows">Output rows.</param>
    /// <param name="rowStride">Offset between consecutive rows' first values.</param>
    /// <param name="colStride">Offset between consecutive values of one row.</param>
    /// <param name="damping">λ as a fraction of the mean of diag(H); ≥ 0.</param>
    /// <returns>The output error Σ (w−ŵ)ᵀH(w−ŵ) before (magnitude) and after the re-fit, relative to Σ wᵀHw.</returns>
    public static (double Before, double After) Refit(ReadOnlySpan<double> h, int d, ReadOnlySpan<float> original, Span<float> pruned,
        int rows, int rowStride, int colStride, double damping)
    {
        if (h.Length != d * d) throw new ArgumentException($"H has {h.Length} values, not {d}×{d}.", nameof(h));
        if (original.Length != pruned.Length) throw new ArgumentException("original and pruned differ in length.", nameof(pruned));
        double meanDiag = 0;
        for (int i = 0; i < d; i++) meanDiag += h[i * d + i];
        meanDiag /= d;
        double lambda = damping * meanDiag;

        var hArray = h.ToArray();
        var w = new double[rows * d];
        var result = new double[rows * d];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < d; i++)
            {
                w[r * d + i] = original[r * rowStride + i * colStride];
                result[r * d + i] = pruned[r * rowStride + i * colStride];
            }
        var errors = new double[rows * 3];
        int maxKept = 0;
        for (int r = 0; r < rows; r++)
        {
            int kept = 0;
            foreach (double v in result.AsSpan(r * d, d)) if (v != 0) kept++;
            maxKept = Math.Max(maxKept, kept);
        }
        // Rows are independent: a few workers take them in turn, each with buffers sized for the largest kept set
        // (one k×k system each, not one per row or per task); the result does not depend on the schedule.
        int next = -1;
        int workers = Math.Max(1, Math.Min(Environment.ProcessorCount, rows));
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, _ =>
        {
            var buffers = new RowBuffers(d, maxKept);
            for (int r = Interlocked.Increment(ref next); r < rows; r = Interlocked.Increment(ref next))
            {
                var wr = w.AsSpan(r * d, d);
                var fit = result.AsSpan(r * d, d);
                errors[3 * r] = Quadratic(hArray, d, wr, wr, buffers.Hw);
                errors[3 * r + 1] = ErrorOf(hArray, d, wr, fit, buffers);
                errors[3 * r + 2] = meanDiag > 0 && SolveRow(hArray, d, wr, fit, lambda, buffers)
                    ? ErrorOf(hArray, d, wr, fit, buffers)
                    : errors[3 * r + 1];
            }
        });

        for (int r = 0; r < rows; r++)
            for (int i = 0; i < d; i++)
            {
                int at = r * rowStride + i * colStride;
                // Only kept positions take the fit; pruned ones stay exactly zero.
                if (pruned[at] != 0) pruned[at] = (float)result[r * d + i];
            }
        double norm = 0, before = 0, after = 0;
        for (int r = 0; r < rows; r++) { norm += errors[3 * r]; before += errors[3 * r + 1]; after += errors[3 * r + 2]; }
        return norm > 0 ? (before / norm, after / norm) : (0, 0);
    }

    private sealed class RowBuffers(int d, int maxKept)
    {
        public readonly int[] Kept = new int[d];
        public readonly double[] A = new double[maxKept * maxKept];
        public readonly double[] B = new double[d];
        public readonly double[] Hw = new double[d];
        public readonly double[] Diff = new double[d];
    }

    /// <summary>Solves the row's damped normal equations over its kept set; false when the system is not positive definite.</summary>
    private static bool SolveRow(double[] h, int d, ReadOnlySpan<double> w, Span<double> row, double lambda, RowBuffers buf)
    {
        int k = 0;
        for (int i = 0; i < d; i++) if (row[i] != 0) buf.Kept[k++] = i;
        if (k == 0) return true;
        var kept = buf.Kept.AsSpan(0, k);
        var a = buf.A.AsSpan(0, k * k);
        var b = buf.B.AsSpan(0, k);
        for (int p = 0; p < k; p++)
        {
            var hRow = h.AsSpan(kept[p] * d, d);
            for (int q = 0; q < k; q++) a[p * k + q] = hRow[kept[q]];
            a[p * k + p] += lambda;
            b[p] = TensorPrimitives.Dot(hRow, w) + lambda * w[kept[p]];
        }
        if (!Cholesky.Factor(a, k)) return false;
        Cholesky.Solve(a, k, b);
        for (int p = 0; p < k; p++) row[kept[p]] = b[p];
        return true;
    }

    private static double ErrorOf(double[] h, int d, ReadOnlySpan<double> w, ReadOnlySpan<double> fit, RowBuffers buf)
    {
        var diff = buf.Diff.AsSpan(0, d);
        TensorPrimitives.Subtract(w, fit, diff);
        return Quadratic(h, d, diff, diff, buf.Hw);
    }

    private static double Quadratic(double[] h, int d, ReadOnlySpan<double> x, ReadOnlySpan<double> y, double[] scratch)
    {
        for (int i = 0; i < d; i++) scratch[i] = TensorPrimitives.Dot(h.AsSpan(i * d, d), y);
        return TensorPrimitives.Dot(x, scratch.AsSpan(0, d));
    }
}

/// <summary>Dense Cholesky factorization and solve of a symmetric positive definite system, row-major, in place.</summary>
internal static class Cholesky
{
    /// <summary>Overwrites the lower triangle of <paramref name="a"/> (n×n) with L, A = L·Lᵀ; false when A is not positive definite.</summary>
    public static bool Factor(Span<double> a, int n)
    {
        for (int i = 0; i < n; i++)
        {
            var li = a.Slice(i * n, n);
            for (int j = 0; j <= i; j++)
            {
                // Row-oriented: both operands are contiguous row prefixes, so the dot product vectorizes.
                double s = li[j] - TensorPrimitives.Dot(li[..j], a.Slice(j * n, j));
                if (i == j)
                {
                    if (!(s > 0) || !double.IsFinite(s)) return false;
                    li[i] = Math.Sqrt(s);
                }
                else li[j] = s / a[j * n + j];
            }
        }
        return true;
    }

    /// <summary>Solves L·Lᵀ x = b in place with the factor from <see cref="Factor"/>.</summary>
    public static void Solve(ReadOnlySpan<double> l, int n, Span<double> b)
    {
        for (int i = 0; i < n; i++)
            b[i] = (b[i] - TensorPrimitives.Dot(l.Slice(i * n, i), b[..i])) / l[i * n + i];
        // Lᵀx = y by columns of Lᵀ (rows of L): once x[i] is known, remove its share from the rows above.
        for (int i = n - 1; i >= 0; i--)
        {
            b[i] /= l[i * n + i];
            double xi = b[i];
            var row = l.Slice(i * n, i);
            for (int j = 0; j < i; j++) b[j] -= row[j] * xi;
        }
    }
}
