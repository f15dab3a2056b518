using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace MLNetCompress.LowRank;

/// <summary>
/// The double-precision kernels under <see cref="Svd"/>: Householder QR and one-sided Jacobi. Matrices here are
/// stored column by column (each column one contiguous span), so every inner loop is a dot product or an
/// update of two contiguous vectors and runs on <see cref="TensorPrimitives"/> or <see cref="Vector{T}"/>.
/// </summary>
internal static class DenseKernels
{
    /// <summary>Largest number of Jacobi sweeps; quadratic convergence needs far fewer (typically 6–12).</summary>
    private const int MaxSweeps = 60;

    /// <summary>Columns count as orthogonal once |a_p·a_q| ≤ Tolerance·‖a_p‖‖a_q‖.</summary>
    private const double Tolerance = 1e-15;

    /// <summary>Column <paramref name="j"/> (length <paramref name="rows"/>) of a column-major matrix.</summary>
    public static Span<double> Column(double[] cols, int rows, int j) => cols.AsSpan(j * rows, rows);

    /// <summary>Row-major <c>rows×cols</c> to column-major (i.e. the transpose, row-major).</summary>
    public static double[] Transpose(ReadOnlySpan<double> a, int rows, int cols)
    {
        var t = new double[a.Length];
        for (int i = 0; i < rows; i++)
        {
            var row = a.Slice(i * cols, cols);
            for (int j = 0; j < cols; j++) t[j * rows + i] = row[j];
        }
        return t;
    }

    /// <summary>
    /// Householder QR of a column-major <c>m×n</c> matrix (m ≥ n), in place: on return <paramref name="cols"/>
    /// holds the reflectors (column k's entries k..m-1 are v_k) and <paramref name="r"/> the n×n upper-triangular
    /// factor, column-major. <paramref name="beta"/>[k] = 2/(v_kᵀv_k), 0 where the column was already reduced.
    /// </summary>
    public static void HouseholderQr(double[] cols, int m, int n, double[] r, double[] beta)
    {
        Array.Clear(r);
        for (int k = 0; k < n; k++)
        {
            var v = Column(cols, m, k)[k..];
            double norm = Math.Sqrt(TensorPrimitives.Dot<double>(v, v));
            double alpha = v[0] >= 0 ? -norm : norm;
            if (norm == 0)
            {
                beta[k] = 0;
                r[k * n + k] = 0;
                continue;
            }
            v[0] -= alpha;
            double vv = TensorPrimitives.Dot<double>(v, v);
            beta[k] = vv == 0 ? 0 : 2 / vv;
            r[k * n + k] = alpha;
            for (int j = k + 1; j < n; j++)
            {
                var c = Column(cols, m, j)[k..];
                double w = beta[k] * TensorPrimitives.Dot<double>(v, c);
                AddScaled(c, v, -w);
            }
        }
        // Row i of column j is final once reflector i has been applied: copy R's strict upper part.
        for (int j = 0; j < n; j++)
        {
            var c = Column(cols, m, j);
            for (int i = 0; i < j; i++) r[j * n + i] = c[i];
        }
    }

    /// <summary>
    /// Multiplies the <c>m×p</c> column-major <paramref name="target"/> by Q = H_0·H_1···H_{n-1} from the left,
    /// the reflectors being those <see cref="HouseholderQr"/> left in <paramref name="reflectors"/>.
    /// </summary>
    public static void ApplyQ(double[] reflectors, double[] beta, int m, int n, double[] target, int p)
    {
        for (int k = n - 1; k >= 0; k--)
        {
            if (beta[k] == 0) continue;
            var v = Column(reflectors, m, k)[k..];
            for (int j = 0; j < p; j++)
            {
                var c = Column(target, m, j)[k..];
                double w = beta[k] * TensorPrimitives.Dot<double>(v, c);
                if (w != 0) AddScaled(c, v, -w);
            }
        }
    }

    /// <summary>
    /// One-sided (Hestenes) Jacobi: rotates the <paramref name="n"/> columns (length <paramref name="m"/>) of
    /// <paramref name="cols"/> until they are mutually orthogonal, applying the same rotations to the columns of
    /// <paramref name="v"/> (n columns of length n, start from the identity). Afterwards column j is σ_j·u_j and
    /// column j of <paramref name="v"/> is v_j.
    /// </summary>
    /// <returns>The sweeps taken.</returns>
    public static int Jacobi(double[] cols, int m, int n, double[] v)
    {
        var norms = new double[n];
        for (int sweep = 1; sweep <= MaxSweeps; sweep++)
        {
            // Norms are refreshed each sweep and updated in O(1) per rotation in between (Demmel–Veselić).
            for (int j = 0; j < n; j++)
            {
                var c = Column(cols, m, j);
                norms[j] = TensorPrimitives.Dot<double>(c, c);
            }
            bool rotated = false;
            for (int p = 0; p < n - 1; p++)
            {
                var ap = Column(cols, m, p);
                for (int q = p + 1; q < n; q++)
                {
                    double alpha = norms[p], betaN = norms[q];
                    if (alpha == 0 || betaN == 0) continue;
                    var aq = Column(cols, m, q);
                    double gamma = TensorPrimitives.Dot<double>(ap, aq);
                    if (Math.Abs(gamma) <= Tolerance * Math.Sqrt(alpha * betaN)) continue;
                    rotated = true;
                    double zeta = (betaN - alpha) / (2 * gamma);
                    double t = Math.Sign(zeta) / (Math.Abs(zeta) + Math.Sqrt(1 + zeta * zeta));
                    if (zeta == 0) t = 1;
                    double c = 1 / Math.Sqrt(1 + t * t), s = c * t;
                    Rotate(ap, aq, c, s);
                    Rotate(Column(v, n, p), Column(v, n, q), c, s);
                    norms[p] = alpha - t * gamma;
                    norms[q] = betaN + t * gamma;
                }
            }
            if (!rotated) return sweep;
        }
        return MaxSweeps;
    }

    /// <summary>x ← c·x − s·y, y ← s·x + c·y, in one pass.</summary>
    public static void Rotate(Span<double> x, Span<double> y, double c, double s)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<double>.Count)
        {
            var vx = MemoryMarshal.Cast<double, Vector<double>>(x);
            var vy = MemoryMarshal.Cast<double, Vector<double>>(y);
            var vc = new Vector<double>(c);
            var vs = new Vector<double>(s);
            for (int k = 0; k < vx.Length; k++)
            {
                var a = vx[k];
                var b = vy[k];
                vx[k] = vc * a - vs * b;
                vy[k] = vs * a + vc * b;
            }
            i = vx.Length * Vector<double>.Count;
        }
        for (; i < x.Length; i++)
        {
            double a = x[i], b = y[i];
            x[i] = c * a - s * b;
            y[i] = s * a + c * b;
        }
    }

    /// <summary>y ← y + a·x.</summary>
    public static void AddScaled(Span<double> y, ReadOnlySpan<double> x, double a) =>
        TensorPrimitives.MultiplyAdd(x, a, y, y);

    /// <summary>
    /// Orthonormal basis of the column space of a column-major <c>m×n</c> matrix (m ≥ n), replacing it: Householder
    /// QR, then Q formed explicitly. Used to re-orthonormalize sketches in the randomized SVD.
    /// </summary>
    public static void Orthonormalize(double[] cols, int m, int n)
    {
        var r = new double[n * n];
        var beta = new double[n];
        var reflectors = (double[])cols.Clone();
        HouseholderQr(reflectors, m, n, r, beta);
        Array.Clear(cols);
        for (int j = 0; j < n; j++) cols[j * m + j] = 1;
        ApplyQ(reflectors, beta, m, n, cols, n);
    }
}
