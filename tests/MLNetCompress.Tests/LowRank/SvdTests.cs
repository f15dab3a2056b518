using MLNetCompress.LowRank;
using MLNetCompress.Onnx;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.LowRank;

public class SvdTests
{
    [Theory]
    [InlineData(40, 25)]
    [InlineData(25, 40)]
    [InlineData(200, 30)] // tall: QR first
    [InlineData(30, 200)]
    [InlineData(1, 7)]
    [InlineData(33, 33)]
    public void FullReconstructsRandomMatricesWithOrthonormalFactors(int rows, int cols)
    {
        var a = MatrixTools.Random(rows, cols, seed: rows * 31 + cols);
        var svd = Svd.Full(a, rows, cols);
        Assert.Equal(Math.Min(rows, cols), svd.Rank);
        MatrixTools.AssertValidSvd(a, svd, 1e-10);
    }

    [Fact]
    public void FullRecoversAKnownSpectrum()
    {
        // A = U·diag(s)·Vᵀ from random orthogonal factors: the singular values are known exactly.
        double[] s = [100, 50, 10, 3, 1, 0.5, 1e-3, 1e-6];
        var a = MatrixTools.WithSpectrum(60, 8, s, seed: 3);
        var svd = Svd.Full(a, 60, 8);
        for (int i = 0; i < s.Length; i++) Assert.Equal(s[i], svd.S[i], s[i] * 1e-8);
        MatrixTools.AssertValidSvd(a, svd, 1e-12);
    }

    [Theory]
    [InlineData(30, 12)]
    [InlineData(12, 30)]
    public void RankDeficientMatricesKeepOrthonormalFactors(int rows, int cols)
    {
        // Rank 3, and an all-zero matrix: the left vectors of the zero values are completed to an orthonormal set.
        var a = MatrixTools.WithSpectrum(Math.Max(rows, cols), 3, [3, 2, 1], seed: 2, cols: Math.Min(rows, cols));
        if (rows < cols) a = MatrixTools.Transpose(a, cols, rows);
        var svd = Svd.Full(a, rows, cols);
        Assert.Equal(0, svd.S[3], 1e-12);
        MatrixTools.AssertValidSvd(a, svd, 1e-10);
        var zero = Svd.Full(new double[rows * cols], rows, cols);
        Assert.All(zero.S, v => Assert.Equal(0, v));
        MatrixTools.AssertOrthonormalColumns(zero.U, rows, zero.Rank, 1e-12);
    }

    [Fact]
    public void SingularValuesMatchAnIndependentEigenSolver()
    {
        var a = MatrixTools.Random(50, 20, seed: 9);
        var svd = Svd.Full(a, 50, 20);
        var eig = MatrixTools.SymmetricEigenvalues(MatrixTools.Gram(a, 50, 20), 20);
        for (int i = 0; i < 20; i++) Assert.Equal(Math.Sqrt(eig[i]), svd.S[i], 1e-9 * svd.S[0]);
    }

    [Fact]
    public void RandomizedIsExactOnLowRankMatrices()
    {
        double[] s = [9, 7, 5, 2, 1, 0.5];
        var a = MatrixTools.WithSpectrum(300, 6, s, seed: 5, cols: 120);
        var svd = Svd.Randomized(a, 300, 120, rank: 6);
        for (int i = 0; i < s.Length; i++) Assert.Equal(s[i], svd.S[i], 1e-9);
        MatrixTools.AssertValidSvd(a, svd, 1e-10);
    }

    [Fact]
    public void RandomizedTopValuesMatchFullOnADecayingSpectrum()
    {
        int m = 150, n = 90;
        var s = Enumerable.Range(0, n).Select(i => Math.Pow(0.85, i)).ToArray();
        var a = MatrixTools.WithSpectrum(m, n, s, seed: 8, cols: n);
        var full = Svd.Full(a, m, n);
        var rnd = Svd.Randomized(a, m, n, rank: 10, new RandomizedSvdOptions { PowerIterations = 3 });
        for (int i = 0; i < 10; i++) Assert.Equal(full.S[i], rnd.S[i], 1e-5 * full.S[i]);
        MatrixTools.AssertOrthonormalColumns(rnd.U, m, 10, 1e-10);
        MatrixTools.AssertOrthonormalColumns(MatrixTools.Transpose(rnd.Vt, 10, n), n, 10, 1e-10);
    }

    [Fact]
    public void RealWeightsDecomposeToTheirOwnSpectrum()
    {
        // A ResNet18 conv weight (128 × 128·3·3) and a MiniLM FFN weight (384 × 1536).
        var resnet = ModelGraph.Load(RealModels.ResNet18).Constants
            .First(c => c.Dims is [128, 128, 3, 3]);
        var conv = Svd.ToDouble(resnet.ToFloats());
        var svd = Svd.Full(conv, 128, 1152);
        MatrixTools.AssertValidSvd(conv, svd, 1e-5);
        var eig = MatrixTools.SymmetricEigenvalues(MatrixTools.Gram(MatrixTools.Transpose(conv, 128, 1152), 1152, 128), 128);
        for (int i = 0; i < 128; i++) Assert.Equal(Math.Sqrt(Math.Max(eig[i], 0)), svd.S[i], 1e-6 * svd.S[0]);

        var minilm = ModelGraph.Load(RealModels.MiniLm).Constants.First(c => c.Dims is [384, 1536]);
        var fc = Svd.ToDouble(minilm.ToFloats());
        var f = Svd.Full(fc, 384, 1536);
        MatrixTools.AssertValidSvd(fc, f, 1e-5);
        var r = Svd.Randomized(fc, 384, 1536, rank: 32, new RandomizedSvdOptions { PowerIterations = 4 });
        // Trained weights have slowly decaying spectra: the top values still agree closely.
        for (int i = 0; i < 8; i++) Assert.Equal(f.S[i], r.S[i], 1e-3 * f.S[i]);
    }
}

/// <summary>Matrix helpers for tests, written independently of the library's kernels.</summary>
internal static class MatrixTools
{
    public static double[] Random(int rows, int cols, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, rows * cols).Select(_ => r.NextDouble() * 2 - 1).ToArray();
    }

    public static double[] Transpose(double[] a, int rows, int cols)
    {
        var t = new double[a.Length];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
        return t;
    }

    /// <summary>Aᵀ·A (cols×cols).</summary>
    public static double[] Gram(double[] a, int rows, int cols)
    {
        var g = new double[cols * cols];
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < cols; j++)
            {
                double sum = 0;
                for (int k = 0; k < rows; k++) sum += a[k * cols + i] * a[k * cols + j];
                g[i * cols + j] = sum;
            }
        return g;
    }

    /// <summary>Random m×k matrix with orthonormal columns (modified Gram–Schmidt, twice).</summary>
    public static double[] RandomOrthonormal(int m, int k, int seed)
    {
        var q = Random(m, k, seed);
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < k; j++)
            {
                for (int p = 0; p < j; p++)
                {
                    double d = 0;
                    for (int i = 0; i < m; i++) d += q[i * k + j] * q[i * k + p];
                    for (int i = 0; i < m; i++) q[i * k + j] -= d * q[i * k + p];
                }
                double norm = Math.Sqrt(Enumerable.Range(0, m).Sum(i => q[i * k + j] * q[i * k + j]));
                for (int i = 0; i < m; i++) q[i * k + j] /= norm;
            }
        return q;
    }

    /// <summary>U·diag(s)·Vᵀ with random orthonormal U (rows×r) and V (cols×r).</summary>
    public static double[] WithSpectrum(int rows, int r, double[] s, int seed, int? cols = null)
    {
        int n = cols ?? r;
        var u = RandomOrthonormal(rows, s.Length, seed);
        var v = RandomOrthonormal(n, s.Length, seed + 100);
        var a = new double[rows * n];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int k = 0; k < s.Length; k++) sum += u[i * s.Length + k] * s[k] * v[j * s.Length + k];
                a[i * n + j] = sum;
            }
        return a;
    }

    /// <summary>Eigenvalues of a symmetric matrix, descending, by the classical two-sided Jacobi method.</summary>
    public static double[] SymmetricEigenvalues(double[] g, int n)
    {
        var a = (double[])g.Clone();
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0;
            for (int p = 0; p < n; p++) for (int q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
            double diag = 0;
            for (int p = 0; p < n; p++) diag += a[p * n + p] * a[p * n + p];
            if (off <= 1e-30 * diag) break;
            for (int p = 0; p < n; p++)
                for (int q = p + 1; q < n; q++)
                {
                    double apq = a[p * n + q];
                    if (Math.Abs(apq) < 1e-300) continue;
                    double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                    double t = Math.Sign(theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    if (theta == 0) t = 1;
                    double c = 1 / Math.Sqrt(t * t + 1), s = t * c;
                    for (int k = 0; k < n; k++)
                    {
                        double akp = a[k * n + p], akq = a[k * n + q];
                        a[k * n + p] = c * akp - s * akq;
                        a[k * n + q] = s * akp + c * akq;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double apk = a[p * n + k], aqk = a[q * n + k];
                        a[p * n + k] = c * apk - s * aqk;
                        a[q * n + k] = s * apk + c * aqk;
                    }
                }
        }
        return Enumerable.Range(0, n).Select(i => a[i * n + i]).OrderDescending().ToArray();
    }

    public static void AssertOrthonormalColumns(double[] q, int m, int k, double tol)
    {
        for (int a = 0; a < k; a++)
            for (int b = 0; b <= a; b++)
            {
                double d = 0;
                for (int i = 0; i < m; i++) d += q[i * k + a] * q[i * k + b];
                Assert.True(Math.Abs(d - (a == b ? 1 : 0)) <= tol, $"columns {a},{b}: dot {d}");
            }
    }

    /// <summary>Checks ‖A − U·S·Vᵀ‖/‖A‖, orthonormality of U and V and descending S.</summary>
    public static void AssertValidSvd(double[] a, SvdResult svd, double tol)
    {
        var back = svd.Reconstruct();
        double err = 0, norm = 0;
        for (int i = 0; i < a.Length; i++) { err += (a[i] - back[i]) * (a[i] - back[i]); norm += a[i] * a[i]; }
        Assert.True(Math.Sqrt(err / norm) <= tol, $"relative reconstruction error {Math.Sqrt(err / norm):G3}");
        AssertOrthonormalColumns(svd.U, svd.Rows, svd.Rank, tol);
        AssertOrthonormalColumns(Transpose(svd.Vt, svd.Rank, svd.Cols), svd.Cols, svd.Rank, tol);
        for (int i = 1; i < svd.Rank; i++) Assert.True(svd.S[i] <= svd.S[i - 1]);
    }
}

public class RankChoiceTests
{
    [Fact]
    public void VbmfFindsTheRankOfALowRankSignalInNoise()
    {
        const int m = 120, n = 80;
        var signal = MatrixTools.WithSpectrum(m, 5, [50, 40, 30, 20, 10], seed: 6, cols: n);
        var random = new Random(3);
        for (int i = 0; i < signal.Length; i++)
        {
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            signal[i] += 0.1 * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
        var s = Svd.Full(signal, m, n).S;
        Assert.Equal(5, RankChoice.Vbmf(s, m, n));
    }

    [Fact]
    public void EnergyCountsSquaredValues()
    {
        Assert.Equal(1, RankChoice.ByEnergy([9, 0.5, 0.5], 0.9));
        Assert.Equal(2, RankChoice.ByEnergy([9, 0.5, 0.5], 0.95));
        Assert.Equal(3, RankChoice.ByEnergy([9, 0.5, 0.5], 1));
    }
}
