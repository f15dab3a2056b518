using System.Numerics.Tensors;

namespace MLNetCompress.LowRank;

/// <summary>
/// A thin singular value decomposition A ≈ U·diag(S)·Vᵀ of a row-major <c>Rows×Cols</c> matrix, truncated to
/// <see cref="Rank"/> terms, singular values descending.
/// </summary>
public sealed class SvdResult
{
    internal SvdResult(int rows, int cols, double[] u, double[] s, double[] vt)
    {
        Rows = rows; Cols = cols; U = u; S = s; Vt = vt;
    }

    /// <summary>Rows of A.</summary>
    public int Rows { get; }

    /// <summary>Columns of A.</summary>
    public int Cols { get; }

    /// <summary>Number of singular triplets kept.</summary>
    public int Rank => S.Length;

    /// <summary>Left singular vectors, row-major <c>Rows×Rank</c> (orthonormal columns).</summary>
    public double[] U { get; }

    /// <summary>Singular values, descending.</summary>
    public double[] S { get; }

    /// <summary>Right singular vectors transposed, row-major <c>Rank×Cols</c> (orthonormal rows).</summary>
    public double[] Vt { get; }

    /// <summary>The first <paramref name="rank"/> triplets.</summary>
    public SvdResult Truncate(int rank)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        if (rank >= Rank) return this;
        var u = new double[Rows * rank];
        for (int i = 0; i < Rows; i++) U.AsSpan(i * Rank, rank).CopyTo(u.AsSpan(i * rank, rank));
        return new SvdResult(Rows, Cols, u, S[..rank], Vt[..(rank * Cols)]);
    }

    /// <summary>U·diag(S)·Vᵀ, row-major.</summary>
    public double[] Reconstruct()
    {
        var a = new double[Rows * Cols];
        var scaled = new double[Rank];
        for (int i = 0; i < Rows; i++)
        {
            TensorPrimitives.Multiply(U.AsSpan(i * Rank, Rank), S, scaled);
            var row = a.AsSpan(i * Cols, Cols);
            for (int k = 0; k < Rank; k++)
                if (scaled[k] != 0) DenseKernels.AddScaled(row, Vt.AsSpan(k * Cols, Cols), scaled[k]);
        }
        return a;
    }
}

/// <summary>Options of the randomized truncated SVD (Halko, Martinsson &amp; Tropp 2011).</summary>
public sealed record RandomizedSvdOptions
{
    /// <summary>Extra sketch columns beyond the rank asked for (p in Halko et al.); 10 is their default.</summary>
    public int Oversampling { get; init; } = 10;

    /// <summary>Power (subspace) iterations, each re-orthonormalized; 2 sharpens slowly decaying spectra such as
    /// trained weights'.</summary>
    public int PowerIterations { get; init; } = 2;

    /// <summary>Seed of the Gaussian sketch: the same seed gives the same factors.</summary>
    public int Seed { get; init; } = 1234;
}

/// <summary>
/// Singular value decompositions in double precision. <see cref="Full(ReadOnlySpan{double}, int, int)"/> is exact to rounding: Householder QR
/// when the matrix is tall, then one-sided Jacobi, which gives singular values to high relative accuracy.
/// <see cref="Randomized(ReadOnlySpan{double}, int, int, int, RandomizedSvdOptions?)"/> finds the top r triplets from a Gaussian sketch with power iterations, at
/// O(m·n·r) cost instead of O(m·n·min(m,n)).
/// </summary>
public static class Svd
{
    /// <summary>The thin SVD of a row-major <c>rows×cols</c> matrix: min(rows, cols) triplets.</summary>
    public static SvdResult Full(ReadOnlySpan<double> a, int rows, int cols)
    {
        CheckShape(a.Length, rows, cols);
        if (rows < cols)
        {
            // SVD of Aᵀ = V·S·Uᵀ: swap the factors back.
            var t = Full(DenseKernels.Transpose(a, rows, cols), cols, rows);
            return new SvdResult(rows, cols, DenseKernels.Transpose(t.Vt, t.Rank, rows), t.S, DenseKernels.Transpose(t.U, cols, t.Rank));
        }
        int m = rows, n = cols;
        var columns = DenseKernels.Transpose(a, m, n); // column-major A
        var v = Identity(n);
        if (m >= 2 * n && n > 0)
        {
            // Tall: A = Q·R, Jacobi on the n×n R (cheaper sweeps), U = Q·U_R.
            var r = new double[n * n];
            var beta = new double[n];
            DenseKernels.HouseholderQr(columns, m, n, r, beta);
            DenseKernels.Jacobi(r, n, n, v);
            var us = new double[m * n];
            for (int j = 0; j < n; j++) r.AsSpan(j * n, n).CopyTo(us.AsSpan(j * m, n));
            DenseKernels.ApplyQ(columns, beta, m, n, us, n);
            return Collect(us, m, n, v, n);
        }
        DenseKernels.Jacobi(columns, m, n, v);
        return Collect(columns, m, n, v, n);
    }

    /// <summary>The thin SVD of a row-major float matrix (computed in double).</summary>
    public static SvdResult Full(ReadOnlySpan<float> a, int rows, int cols) => Full(ToDouble(a), rows, cols);

    /// <summary>
    /// The top <paramref name="rank"/> singular triplets by randomized subspace iteration: Y = A·Ω with a Gaussian
    /// Ω of rank + oversampling columns, <see cref="RandomizedSvdOptions.PowerIterations"/> rounds of
    /// Q ← orth(A·orth(Aᵀ·Q)), then the exact SVD of the small B = Qᵀ·A. Exact when A has rank ≤ rank + oversampling.
    /// </summary>
    public static SvdResult Randomized(ReadOnlySpan<double> a, int rows, int cols, int rank, RandomizedSvdOptions? options = null)
    {
        CheckShape(a.Length, rows, cols);
        ArgumentOutOfRangeException.ThrowIfLessThan(rank, 1);
        options ??= new RandomizedSvdOptions();
        ArgumentOutOfRangeException.ThrowIfNegative(options.Oversampling);
        ArgumentOutOfRangeException.ThrowIfNegative(options.PowerIterations);
        int small = Math.Min(rows, cols);
        rank = Math.Min(rank, small);
        int l = Math.Min(rank + options.Oversampling, small);
        // When the sketch is as wide as the matrix the sketch saves nothing.
        if (l >= small) return Full(a, rows, cols).Truncate(rank);

        int m = rows, n = cols;
        var random = new Random(options.Seed);
        var omega = new double[n * l]; // column-major n×l
        for (int i = 0; i < omega.Length; i++) omega[i] = Gaussian(random);
        var q = new double[m * l];     // column-major m×l
        MultiplyA(a, m, n, omega, l, q);
        DenseKernels.Orthonormalize(q, m, l);
        var z = new double[n * l];     // column-major n×l = Aᵀ·Q
        for (int it = 0; it < options.PowerIterations; it++)
        {
            MultiplyAt(a, m, n, q, l, z);
            DenseKernels.Orthonormalize(z, n, l);
            MultiplyA(a, m, n, z, l, q);
            DenseKernels.Orthonormalize(q, m, l);
        }
        // B = Qᵀ·A is l×n; its rows are the columns of Aᵀ·Q, so z (column-major n×l) is B row-major.
        MultiplyAt(a, m, n, q, l, z);
        var b = Full(z, l, n);
        // U = Q·U_B, written column-major then turned row-major.
        var ucols = new double[m * rank];
        for (int c = 0; c < rank; c++)
        {
            var uc = DenseKernels.Column(ucols, m, c);
            for (int j = 0; j < l; j++)
            {
                double w = b.U[j * b.Rank + c];
                if (w != 0) DenseKernels.AddScaled(uc, DenseKernels.Column(q, m, j), w);
            }
        }
        return new SvdResult(rows, cols, DenseKernels.Transpose(ucols, rank, m), b.S[..rank], b.Vt[..(rank * n)]);
    }

    /// <summary>The top triplets of a row-major float matrix (computed in double).</summary>
    public static SvdResult Randomized(ReadOnlySpan<float> a, int rows, int cols, int rank, RandomizedSvdOptions? options = null) =>
        Randomized(ToDouble(a), rows, cols, rank, options);

    /// <summary>Widens float values to double.</summary>
    public static double[] ToDouble(ReadOnlySpan<float> a)
    {
        var d = new double[a.Length];
        TensorPrimitives.ConvertChecked<float, double>(a, d);
        return d;
    }

    // Y = A·X with X column-major n×l: y_j[i] = A_i·x_j, one contiguous dot per entry.
    private static void MultiplyA(ReadOnlySpan<double> a, int m, int n, double[] x, int l, double[] y)
    {
        for (int j = 0; j < l; j++)
        {
            var xj = x.AsSpan(j * n, n);
            var yj = y.AsSpan(j * m, m);
            for (int i = 0; i < m; i++) yj[i] = TensorPrimitives.Dot(a.Slice(i * n, n), xj);
        }
    }

    // Z = Aᵀ·Q with Q column-major m×l: z_j = Σ_i q_j[i]·A_i, one contiguous axpy per row.
    private static void MultiplyAt(ReadOnlySpan<double> a, int m, int n, double[] q, int l, double[] z)
    {
        Array.Clear(z);
        for (int j = 0; j < l; j++)
        {
            var zj = z.AsSpan(j * n, n);
            var qj = q.AsSpan(j * m, m);
            for (int i = 0; i < m; i++)
                if (qj[i] != 0) TensorPrimitives.MultiplyAdd(a.Slice(i * n, n), qj[i], zj, zj);
        }
    }

    // Turns Jacobi's output (columns σ_j·u_j and v_j) into sorted U, S, Vᵀ.
    private static SvdResult Collect(double[] us, int m, int n, double[] v, int k)
    {
        var sigma = new double[k];
        for (int j = 0; j < k; j++)
        {
            var c = DenseKernels.Column(us, m, j);
            sigma[j] = Math.Sqrt(TensorPrimitives.Dot<double>(c, c));
        }
        var order = Enumerable.Range(0, k).OrderByDescending(j => sigma[j]).ThenBy(j => j).ToArray();
        var ucols = new double[m * k]; // column-major while completing
        var s = new double[k];
        var vt = new double[k * n];
        double floor = (sigma.Length > 0 ? sigma.Max() : 0) * 1e-300;
        for (int r = 0; r < k; r++)
        {
            int j = order[r];
            s[r] = sigma[j];
            if (sigma[j] > floor) TensorPrimitives.Multiply(DenseKernels.Column(us, m, j), 1 / sigma[j], DenseKernels.Column(ucols, m, r));
            DenseKernels.Column(v, n, j).CopyTo(vt.AsSpan(r * n, n));
        }
        // A zero singular value leaves its left vector undetermined: complete U to an orthonormal set
        // (Gram–Schmidt of unit vectors against the columns already there) so U stays orthonormal.
        for (int r = 0; r < k; r++)
        {
            if (s[r] > floor) continue;
            var col = DenseKernels.Column(ucols, m, r);
            for (int e = 0; e < m; e++)
            {
                col.Clear();
                col[e] = 1;
                for (int pass = 0; pass < 2; pass++)
                    for (int q = 0; q < k; q++)
                        if (q != r && (s[q] > floor || q < r))
                            DenseKernels.AddScaled(col, DenseKernels.Column(ucols, m, q), -TensorPrimitives.Dot<double>(col, DenseKernels.Column(ucols, m, q)));
                double norm = Math.Sqrt(TensorPrimitives.Dot<double>(col, col));
                if (norm > 0.5)
                {
                    TensorPrimitives.Multiply(col, 1 / norm, col);
                    break;
                }
            }
        }
        return new SvdResult(m, n, DenseKernels.Transpose(ucols, k, m), s, vt);
    }

    private static double[] Identity(int n)
    {
        var v = new double[n * n];
        for (int i = 0; i < n; i++) v[i * n + i] = 1;
        return v;
    }

    private static double Gaussian(Random random)
    {
        // Box–Muller; 1 - U keeps the logarithm's argument in (0, 1].
        double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    private static void CheckShape(int length, int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if ((long)rows * cols != length)
            throw new ArgumentException($"a {rows}×{cols} matrix has {(long)rows * cols} values, the span {length}.");
    }
}
