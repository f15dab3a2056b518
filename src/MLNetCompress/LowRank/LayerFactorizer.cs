using System.Numerics.Tensors;
using MLNetCompress.Calibration;

namespace MLNetCompress.LowRank;

/// <summary>One weight of the factorized layer, float32, in the shape its node reads.</summary>
internal sealed record Factor(float[] Values, long[] Dims);

/// <summary>The factors of one layer and what they cost and lose.</summary>
internal sealed record Factorization(
    IReadOnlyList<Factor> Factors, int[] Ranks, long ParamsAfter, long MacsAfter,
    double RelativeError, double MaxAbsError, float[]? Bias);

/// <summary>
/// The numerics of each split: plain (best weight approximation, Eckart–Young) or data-aware (best output
/// approximation on calibration data). All factors are computed in double and stored as float32.
/// </summary>
internal static class LayerFactorizer
{
    /// <summary>
    /// W (out×in, row-major) ≈ L·R with L out×r and R r×in. Plain: L = U√S, R = √S·Vᵀ. Data-aware (with
    /// <paramref name="outputStats"/>, the statistics of y = W·x + b): the top-r eigenvectors P of the output
    /// covariance W·Σₓ·Wᵀ — the left singular vectors of W·Σₓ^{1/2}, so the same optimum as the SVD of W·Σₓ^{1/2}
    /// without an in×in Σₓ or its square root — give L = P, R = Pᵀ·W, and the bias absorbs the mean of what the
    /// projection drops. With <see cref="LowRankOptions.CompensateUpstream"/> the second factor is instead the (ridge)
    /// regression of the reference model's outputs on the kept components, undoing part of earlier splits' error. Without a bias (<paramref name="bias"/> null and <paramref name="canAddBias"/> false) the
    /// uncentered second moment is used instead, which is optimal for a purely linear map.
    /// </summary>
    public static (double[] L, double[] R, int Rank, double[]? Bias) SplitMatrix(double[] w, int outDim, int inDim, LowRankOptions o,
        RunningCrossCovariance? outputStats, double[]? bias, bool canAddBias)
    {
        int full = Math.Min(outDim, inDim);
        long before = (long)outDim * inDim;
        int? known = RankChoice.Known(o, full, outDim + inDim, before);
        SvdResult? weightSvd = null;
        if (o.Vbmf)
        {
            // VBMF reads the weight's own spectrum, data-aware or not.
            weightSvd = Svd.Full(w, outDim, inDim);
            known = RankChoice.Vbmf(weightSvd.S, outDim, inDim);
        }
        if (outputStats is null)
        {
            var svd = weightSvd ?? Top(w, outDim, inDim, known, o);
            int r = known ?? RankChoice.Choose(o, Squares(svd.S), full, outDim + inDim, before);
            svd = svd.Truncate(r);
            var l = new double[outDim * r];
            var rr = new double[r * inDim];
            for (int k = 0; k < r; k++)
            {
                double root = Math.Sqrt(svd.S[k]);
                for (int i = 0; i < outDim; i++) l[i * r + k] = svd.U[i * r + k] * root;
                TensorPrimitives.Multiply(svd.Vt.AsSpan(k * inDim, inDim), root, rr.AsSpan(k * inDim, inDim));
            }
            return (l, rr, r, bias);
        }

        bool affine = bias is not null || canAddBias;
        var working = outputStats.Working;
        var cov = affine ? working.Covariance() : working.SecondMoment();
        if (o.CovarianceShrinkage > 0) Shrink(cov, w, outDim, inDim, o.CovarianceShrinkage);
        var eig = Top(cov, outDim, outDim, known, o);
        int rank = known ?? RankChoice.Choose(o, eig.S, full, outDim + inDim, before);
        rank = Math.Min(rank, eig.Rank);
        eig = eig.Truncate(rank);
        var p = eig.U; // out×rank, orthonormal columns: the principal directions of what the layer now outputs
        var rMat = new double[rank * inDim];
        for (int i = 0; i < outDim; i++)
        {
            var wi = w.AsSpan(i * inDim, inDim);
            for (int k = 0; k < rank; k++)
                if (p[i * rank + k] != 0) DenseKernels.AddScaled(rMat.AsSpan(k * inDim, inDim), wi, p[i * rank + k]);
        }
        // Compensating: L regresses the reference outputs on the kept components, L = (C_ref,work·P + δ·P)·diag(1/(λ+δ)),
        // a ridge toward L = P. Where nothing upstream changed C_ref,work = C_work and L = P either way; otherwise L
        // also undoes part of the earlier layers' error, at the risk of fitting noise when calibration data is scarce.
        var left = (double[])p.Clone();
        if (o.CompensateUpstream)
        {
            var cross = affine ? outputStats.CrossCovariance() : outputStats.CrossMoment();
            double delta = o.CompensationRidge * eig.S.Average();
            var cp = new double[outDim];
            for (int k = 0; k < rank; k++)
            {
                double denominator = eig.S[k] + delta;
                if (!(denominator > 0)) continue;
                for (int j = 0; j < outDim; j++) cp[j] = p[j * rank + k];
                for (int i = 0; i < outDim; i++)
                    left[i * rank + k] = (TensorPrimitives.Dot(cross.AsSpan(i * outDim, outDim), cp) + delta * p[i * rank + k]) / denominator;
            }
        }
        double[]? newBias = bias;
        if (affine)
        {
            // ŷ = L·Pᵀ·(z − μ_z) + μ_ref with z = W·x: the bias takes the reference mean and removes the kept part of μ_z.
            var muZ = working.Mean();
            if (bias is not null) TensorPrimitives.Subtract(muZ, bias, muZ);
            var proj = new double[rank];
            for (int i = 0; i < outDim; i++)
                for (int k = 0; k < rank; k++) proj[k] += p[i * rank + k] * muZ[i];
            var muRef = o.CompensateUpstream ? outputStats.ReferenceMean() : working.Mean();
            newBias = new double[outDim];
            for (int i = 0; i < outDim; i++)
                newBias[i] = muRef[i] - TensorPrimitives.Dot(left.AsSpan(i * rank, rank), proj);
        }
        return (left, rMat, rank, newBias);
    }

    /// <summary>
    /// Shrinks the output covariance C = W·Σₓ·Wᵀ in place toward the plain (weight-only) target: C' = (1−λ)·C + λ·μ·W·Wᵀ
    /// with μ = tr C / tr(W·Wᵀ). This is W·Σₓ'·Wᵀ for the input covariance shrunk toward a multiple of the identity,
    /// Σₓ' = (1−λ)·Σₓ + λ·μ·I, with μ chosen so that both terms carry the same output energy (tr Σₓ / n is not known from
    /// output statistics; the two agree when Σₓ is isotropic). λ = 1 gives the plain Eckart–Young split.
    /// </summary>
    internal static void Shrink(double[] cov, ReadOnlySpan<double> w, int outDim, int inDim, double lambda)
    {
        var gram = new double[outDim * outDim];
        for (int i = 0; i < outDim; i++)
        {
            var wi = w.Slice(i * inDim, inDim);
            for (int j = 0; j <= i; j++) gram[i * outDim + j] = gram[j * outDim + i] = TensorPrimitives.Dot(wi, w.Slice(j * inDim, inDim));
        }
        double traceC = 0, traceG = 0;
        for (int i = 0; i < outDim; i++)
        {
            traceC += cov[i * outDim + i];
            traceG += gram[i * outDim + i];
        }
        double mu = traceG > 0 ? traceC / traceG : 0;
        TensorPrimitives.Multiply(cov, 1 - lambda, cov);
        TensorPrimitives.MultiplyAdd(gram, lambda * mu, cov, cov);
    }

    /// <summary>
    /// Tucker-2 by HOSVD of W [Cout, Cin, kh, kw]: U_out (Cout×r2) and U_in (Cin×r1) are the leading left singular
    /// vectors of the mode-0 and mode-1 unfoldings; the core is W ×₀ U_outᵀ ×₁ U_inᵀ.
    /// </summary>
    public static (double[] UIn, double[] Core, double[] UOut, int R1, int R2) Tucker(double[] w, int cout, int cin, int kh, int kw, LowRankOptions o)
    {
        int k2 = kh * kw;
        var (r1Known, r2Known) = TuckerRanks(cout, cin, k2, o);
        // Mode 0: Cout × (Cin·k²) is W itself; mode 1: Cin × (Cout·k²).
        var mode1 = new double[cin * cout * k2];
        for (int oc = 0; oc < cout; oc++)
            for (int c = 0; c < cin; c++)
                w.AsSpan((oc * cin + c) * k2, k2).CopyTo(mode1.AsSpan(c * cout * k2 + oc * k2, k2));
        var sOut = Top(w, cout, cin * k2, r2Known, o);
        var sIn = Top(mode1, cin, cout * k2, r1Known, o);
        int r2 = r2Known ?? (o.Vbmf ? RankChoice.Vbmf(sOut.S, cout, cin * k2) : RankChoice.ByEnergy(Squares(sOut.S), o.Energy!.Value));
        int r1 = r1Known ?? (o.Vbmf ? RankChoice.Vbmf(sIn.S, cin, cout * k2) : RankChoice.ByEnergy(Squares(sIn.S), o.Energy!.Value));
        r2 = Math.Min(r2, sOut.Rank);
        r1 = Math.Min(r1, sIn.Rank);
        var uOut = sOut.Truncate(r2).U; // cout×r2
        var uIn = sIn.Truncate(r1).U;   // cin×r1
        // T[o, i, s] = Σ_c W[o, c, s]·U_in[c, i]; core[j, i, s] = Σ_o U_out[o, j]·T[o, i, s].
        var t = new double[cout * r1 * k2];
        for (int oc = 0; oc < cout; oc++)
            for (int c = 0; c < cin; c++)
            {
                var wk = w.AsSpan((oc * cin + c) * k2, k2);
                for (int i = 0; i < r1; i++)
                {
                    double f = uIn[c * r1 + i];
                    if (f != 0) DenseKernels.AddScaled(t.AsSpan((oc * r1 + i) * k2, k2), wk, f);
                }
            }
        var core = new double[r2 * r1 * k2];
        for (int oc = 0; oc < cout; oc++)
        {
            var to = t.AsSpan(oc * r1 * k2, r1 * k2);
            for (int j = 0; j < r2; j++)
            {
                double f = uOut[oc * r2 + j];
                if (f != 0) DenseKernels.AddScaled(core.AsSpan(j * r1 * k2, r1 * k2), to, f);
            }
        }
        return (uIn, core, uOut, r1, r2);
    }

    /// <summary>
    /// Data-aware Tucker-2 of W [Cout, Cin, kh, kw] from the statistics of the conv's input channels (<paramref name="inputStats"/>)
    /// and of its output y = W∗x + b (<paramref name="outputStats"/>). Squeeze: the rank-r1 map B·x that best preserves the
    /// layer's output (treating positions as uncorrelated): with W₍₁₎ = U·S·Vᵀ the mode-1 unfolding (Cin × Cout·k²) and
    /// G^{1/2} = U·S·Uᵀ, Q = the top eigenvectors of G^{1/2}·Σₓ·G^{1/2} give B = Qᵀ·G^{1/2} and the reduced weight
    /// W₁ = W ×₁ (Qᵀ·U·Vᵀ) (the reduced-rank regression, with G^{-1/2}·W₍₁₎ = U·Vᵀ keeping it stable). Expand: P, the top-r2
    /// eigenvectors of the output covariance (as the channel form), core = Pᵀ·W₁. The bias takes the mean of what both
    /// projections drop (padding borders aside). <see cref="LowRankOptions.CovarianceShrinkage"/> shrinks Σₓ toward
    /// (tr Σₓ / Cin)·I and the output covariance as in <see cref="Shrink"/>.
    /// </summary>
    public static (double[] UIn, double[] Core, double[] UOut, int R1, int R2, double[] Bias) TuckerDataAware(double[] w, int cout, int cin, int kh, int kw,
        LowRankOptions o, RunningCrossCovariance inputStats, RunningCrossCovariance outputStats, double[]? bias)
    {
        int k2 = kh * kw, inner = cout * k2;
        var (r1Known, r2Known) = TuckerRanks(cout, cin, k2, o);
        var mode1 = new double[cin * inner];
        for (int oc = 0; oc < cout; oc++)
            for (int c = 0; c < cin; c++)
                w.AsSpan((oc * cin + c) * k2, k2).CopyTo(mode1.AsSpan(c * inner + oc * k2, k2));
        var svd = Svd.Full(mode1, cin, inner); // U cin×m, S m, Vt m×inner, m = min(cin, inner)
        int m = svd.Rank;
        // G^{1/2} = U·S·Uᵀ (cin×cin).
        var us = new double[cin * m];
        for (int c = 0; c < cin; c++)
            for (int k = 0; k < m; k++) us[c * m + k] = svd.U[c * m + k] * svd.S[k];
        var gHalf = Multiply(us, DenseKernels.Transpose(svd.U, cin, m), cin, m, cin);
        var sigma = inputStats.Working.Covariance();
        double shrink = o.CovarianceShrinkage;
        if (shrink > 0)
        {
            double mu = 0;
            for (int c = 0; c < cin; c++) mu += sigma[c * cin + c];
            mu /= cin;
            TensorPrimitives.Multiply(sigma, 1 - shrink, sigma);
            for (int c = 0; c < cin; c++) sigma[c * cin + c] += shrink * mu;
        }
        var weighted = Multiply(Multiply(gHalf, sigma, cin, cin, cin), gHalf, cin, cin, cin);
        var eigIn = Top(weighted, cin, cin, r1Known, o);
        int r1 = Math.Min(r1Known ?? RankChoice.ByEnergy(eigIn.S, o.Energy ?? 1), eigIn.Rank);
        var q = eigIn.Truncate(r1).U; // cin×r1
        var qt = DenseKernels.Transpose(q, cin, r1);
        var squeeze = Multiply(qt, gHalf, r1, cin, cin);                 // B: r1×cin
        var qtU = Multiply(qt, svd.U, r1, cin, m);                       // r1×m
        var reducedMode1 = Multiply(qtU, svd.Vt, r1, m, inner);          // W₁ as r1 × (cout·k²)

        var cov = outputStats.Working.Covariance();
        if (shrink > 0) Shrink(cov, w, cout, cin * k2, shrink);
        var eigOut = Top(cov, cout, cout, r2Known, o);
        int r2 = Math.Min(r2Known ?? RankChoice.ByEnergy(eigOut.S, o.Energy ?? 1), eigOut.Rank);
        var p = eigOut.Truncate(r2).U; // cout×r2
        // core[j, i, s] = Σ_o P[o, j]·W₁[o, i, s]; W₁[o, i, s] = reducedMode1[i, o·k² + s].
        var core = new double[r2 * r1 * k2];
        for (int oc = 0; oc < cout; oc++)
            for (int i = 0; i < r1; i++)
            {
                var wi = reducedMode1.AsSpan(i * inner + oc * k2, k2);
                for (int j = 0; j < r2; j++)
                {
                    double f = p[oc * r2 + j];
                    if (f != 0) DenseKernels.AddScaled(core.AsSpan((j * r1 + i) * k2, k2), wi, f);
                }
            }
        // Bias: ŷ = P·Pᵀ·ẑ + b' with ẑ the squeezed conv's output; b' = P·Pᵀ·(d + b) + (I − P·Pᵀ)·μ_y, d = E[z − ẑ] = ΣₛW·μₓ − ΣₛW₁·(B·μₓ).
        var muX = inputStats.Working.Mean();
        var bMu = new double[r1];
        for (int i = 0; i < r1; i++) bMu[i] = TensorPrimitives.Dot(squeeze.AsSpan(i * cin, cin), muX);
        var d = new double[cout];
        for (int oc = 0; oc < cout; oc++)
        {
            double full = 0, kept = 0;
            for (int c = 0; c < cin; c++) full += TensorPrimitives.Sum(w.AsSpan((oc * cin + c) * k2, k2)) * muX[c];
            for (int i = 0; i < r1; i++) kept += TensorPrimitives.Sum(reducedMode1.AsSpan(i * inner + oc * k2, k2)) * bMu[i];
            d[oc] = full - kept + (bias?[oc] ?? 0);
        }
        var muY = outputStats.Working.Mean();
        TensorPrimitives.Subtract(d, muY, d); // d + b − μ_y, projected and added back to μ_y
        var proj = new double[r2];
        for (int oc = 0; oc < cout; oc++)
            for (int j = 0; j < r2; j++) proj[j] += p[oc * r2 + j] * d[oc];
        var newBias = new double[cout];
        for (int oc = 0; oc < cout; oc++) newBias[oc] = muY[oc] + TensorPrimitives.Dot(p.AsSpan(oc * r2, r2), proj);
        return (DenseKernels.Transpose(squeeze, r1, cin), core, p, r1, r2, newBias);
    }

    /// <summary>Tucker-2 ranks (r1, r2) known from the options before any SVD: ratio and parameter criteria; null otherwise.</summary>
    private static (int? R1, int? R2) TuckerRanks(int cout, int cin, int k2, LowRankOptions o)
    {
        switch (o.Criterion)
        {
            case RankCriterion.RankRatio:
                return (Math.Clamp((int)Math.Round(o.RankRatio!.Value * cin), 1, cin), Math.Clamp((int)Math.Round(o.RankRatio!.Value * cout), 1, cout));
            case RankCriterion.TargetParams:
                // Equal fractions ρ of both channel counts: ρ²·Cin·Cout·k² + ρ·(Cin² + Cout²) = P·Cin·Cout·k².
                double a = (double)cin * cout * k2, b = (double)cin * cin + (double)cout * cout;
                double rho = (-b + Math.Sqrt(b * b + 4 * a * o.TargetParams!.Value * a)) / (2 * a);
                return (Math.Clamp((int)Math.Floor(rho * cin), 1, cin), Math.Clamp((int)Math.Floor(rho * cout), 1, cout));
            default:
                return (null, null);
        }
    }

    /// <summary>The top singular triplets: randomized when the rank is known and well below full, else the full SVD.</summary>
    public static SvdResult Top(double[] a, int rows, int cols, int? rank, LowRankOptions o)
    {
        int full = Math.Min(rows, cols);
        if (rank is int r && r + o.Randomized.Oversampling < full / 2)
            return Svd.Randomized(a, rows, cols, r, o.Randomized);
        return Svd.Full(a, rows, cols);
    }

    /// <summary>‖W − Ŵ‖_F / ‖W‖_F and max |W − Ŵ|.</summary>
    public static (double Relative, double MaxAbs) Error(ReadOnlySpan<double> w, ReadOnlySpan<double> approx)
    {
        double err = 0, norm = 0, max = 0;
        for (int i = 0; i < w.Length; i++)
        {
            double d = w[i] - approx[i];
            err += d * d;
            norm += w[i] * w[i];
            max = Math.Max(max, Math.Abs(d));
        }
        return (norm == 0 ? 0 : Math.Sqrt(err / norm), max);
    }

    /// <summary>Row-major product of an m×k and a k×n matrix.</summary>
    public static double[] Multiply(double[] a, double[] b, int m, int k, int n)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
        {
            var ci = c.AsSpan(i * n, n);
            for (int j = 0; j < k; j++)
            {
                double f = a[i * k + j];
                if (f != 0) DenseKernels.AddScaled(ci, b.AsSpan(j * n, n), f);
            }
        }
        return c;
    }

    public static float[] ToFloat(ReadOnlySpan<double> values)
    {
        var f = new float[values.Length];
        TensorPrimitives.ConvertTruncating<double, float>(values, f);
        return f;
    }

    private static double[] Squares(double[] s)
    {
        var e = new double[s.Length];
        TensorPrimitives.Multiply(s, s, e);
        return e;
    }
}
