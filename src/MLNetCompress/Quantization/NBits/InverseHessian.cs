using System.Numerics.Tensors;

namespace MLNetCompress.Quantization.NBits;

/// <summary>
/// The upper-triangular <c>U</c> with <c>Uᵀ·U = H⁻¹</c> for a symmetric positive definite <c>H</c>: what GPTQ
/// reads row by row. Computed without forming <c>H⁻¹</c>: the Cholesky factor of <c>H</c> with rows and columns
/// reversed gives <c>H = U₁·U₁ᵀ</c> (U₁ upper), so <c>H⁻¹ = (U₁⁻¹)ᵀ·U₁⁻¹</c> and <c>U = U₁⁻¹</c>.
/// </summary>
internal static class InverseHessian
{
    /// <summary>Returns <c>U</c> (row-major <c>n×n</c>, zeros below the diagonal), or null when <paramref name="h"/> is
    /// not positive definite. <paramref name="h"/> is not modified.</summary>
    public static double[]? UpperCholeskyOfInverse(ReadOnlySpan<double> h, int n, CancellationToken cancellation = default)
    {
        if (h.Length != (long)n * n) throw new ArgumentException($"{h.Length} values for a {n}×{n} matrix", nameof(h));
        // a = P·H·P (P reverses the order).
        var a = new double[(long)n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) a[(long)i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)];
        if (!CholeskyLower(a, n, cancellation)) return null;
        InvertLower(a, n, cancellation);
        var u = new double[(long)n * n];
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++) u[(long)i * n + j] = a[(long)(n - 1 - i) * n + (n - 1 - j)];
        return u;
    }

    /// <summary>In place: the lower Cholesky factor L of <paramref name="a"/> (only its lower triangle is read). False
    /// when a pivot is not positive.</summary>
    internal static bool CholeskyLower(double[] a, int n, CancellationToken cancellation = default)
    {
        for (int i = 0; i < n; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            var rowI = a.AsSpan(i * n, n);
            for (int j = 0; j <= i; j++)
            {
                double s = rowI[j] - TensorPrimitives.Dot<double>(rowI[..j], a.AsSpan(j * n, j));
                if (i == j)
                {
                    if (!(s > 0) || !double.IsFinite(s)) return false;
                    rowI[i] = Math.Sqrt(s);
                }
                else rowI[j] = s / a[j * n + j];
            }
            rowI[(i + 1)..].Clear();
        }
        return true;
    }

    /// <summary>In place: <c>L⁻¹</c> of a lower-triangular <paramref name="a"/>, row by row
    /// (<c>X[i] = (eᵢ − Σ_{m&lt;i} L[i,m]·X[m]) / L[i,i]</c>, contiguous row updates).</summary>
    internal static void InvertLower(double[] a, int n, CancellationToken cancellation = default)
    {
        var acc = new double[n];
        for (int i = 0; i < n; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            var sum = acc.AsSpan(0, i);
            sum.Clear();
            for (int m = 0; m < i; m++)
            {
                double l = a[i * n + m];
                if (l == 0) continue;
                var xm = a.AsSpan(m * n, m + 1);
                TensorPrimitives.MultiplyAdd(xm, l, sum[..(m + 1)], sum[..(m + 1)]);
            }
            double d = a[i * n + i];
            var row = a.AsSpan(i * n, n);
            TensorPrimitives.Multiply(sum, -1 / d, row[..i]);
            row[i] = 1 / d;
        }
    }
}
