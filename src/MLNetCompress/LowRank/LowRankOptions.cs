using System.Collections.Frozen;
using MLNetCompress.Calibration;
using MLNetCompress.Data;

namespace MLNetCompress.LowRank;

/// <summary>How a Conv weight is split.</summary>
public enum ConvFactorization
{
    /// <summary>K×K Cin→r, then 1×1 r→Cout (the conv keeps its stride, pads and dilations; the 1×1 takes the bias).</summary>
    Channel,
    /// <summary>K×1 Cin→r, then 1×K r→Cout (Jaderberg et al. 2014): vertical stride/pads on the first, horizontal on the second. 2-D convs only.</summary>
    Spatial,
    /// <summary>Tucker-2 squeeze–conv–expand: 1×1 Cin→r1, K×K r1→r2, 1×1 r2→Cout, initialized by HOSVD, or with calibration data by
    /// the input channels' covariance (squeeze) and the output covariance (expand). 2-D convs only.</summary>
    Tucker,
}

/// <summary>How the rank of each layer is chosen. Exactly one of <see cref="LowRankOptions.Energy"/>,
/// <see cref="LowRankOptions.RankRatio"/>, <see cref="LowRankOptions.TargetParams"/>, <see cref="LowRankOptions.Vbmf"/>
/// and <see cref="LowRankOptions.MinCosine"/> is set.</summary>
public enum RankCriterion
{
    /// <summary>The smallest rank keeping a fraction of the squared singular values.</summary>
    Energy,
    /// <summary>A fraction of the full rank min(m, n).</summary>
    RankRatio,
    /// <summary>The largest rank whose factors hold at most a fraction of the layer's parameters.</summary>
    TargetParams,
    /// <summary>Automatic: the rank empirical variational Bayesian matrix factorization keeps (Nakajima et al. 2013),
    /// with the noise variance estimated from the spectrum.</summary>
    Vbmf,
    /// <summary>Measured search: which layers to split, and at which of <see cref="LowRankOptions.SearchRankRatios"/>, to save
    /// the most ONNX Runtime time while the model's outputs keep <see cref="LowRankOptions.MinCosine"/> on the calibration data.</summary>
    Search,
}

/// <summary>Options of <see cref="LowRankPass"/>.</summary>
public sealed record LowRankOptions
{
    /// <summary>The ops the pass factorizes by default.</summary>
    public static IReadOnlySet<string> DefaultOps { get; } = new[] { "Conv", "Gemm", "MatMul" }.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>Keep this fraction (0, 1] of the squared singular values (of the output energy when data-aware).</summary>
    public double? Energy { get; init; }

    /// <summary>Rank = this fraction (0, 1] of min(m, n), at least 1.</summary>
    public double? RankRatio { get; init; }

    /// <summary>Factors hold at most this fraction (0, 1] of the layer's weight parameters.</summary>
    public double? TargetParams { get; init; }

    /// <summary>Choose each rank automatically by empirical VBMF on the weight's spectrum.</summary>
    public bool Vbmf { get; init; }

    /// <summary>
    /// Rank search (needs <see cref="Calibration"/>; replaces the other rank criteria): every eligible layer is tried alone
    /// at each of <see cref="SearchRankRatios"/> — its split timed alone in ONNX Runtime against the original layer, and the
    /// drop of the model's output cosine to the original measured on <see cref="SearchRows"/> rows the factors were not fitted to
    /// (<see cref="SearchData"/>) — then splits
    /// are chosen greedily, most milliseconds saved per unit of cosine lost, while the summed losses stay within
    /// 1 − MinCosine. The chosen splits are then fitted together (data-aware, in order) and the model's mean cosine is
    /// checked on the same held-out rows; while it falls short the budget shrinks and the choice is redone (a few rounds at most;
    /// if none holds, nothing is split). The trials and the result are in <see cref="LowRankPlan.Trials"/>.
    /// </summary>
    public double? MinCosine { get; init; }

    /// <summary>The ranks the search tries for each layer, as fractions (0, 1] of its full rank (the forms of
    /// <see cref="RankRatio"/>; splits that would not have fewer parameters are not tried).</summary>
    public IReadOnlyList<double> SearchRankRatios { get; init; } = [0.25, 0.375, 0.5, 0.625];

    /// <summary>Rows the search compares the model's outputs on (each trial runs the whole model on them): of
    /// <see cref="SearchData"/>, or else the calibration rows right after the <see cref="CalibrationOptions.MaxRows"/> the factors are fitted on.</summary>
    public int SearchRows { get; init; } = 32;

    /// <summary>
    /// Data the search measures the output cosine on, built against the model's inputs; null for the calibration rows after
    /// the fitted ones. Factors fitted on a few images look better on those images than on others: data unlike the
    /// calibration set (other photos) gives the honest estimate.
    /// </summary>
    public IDataFeed? SearchData { get; init; }

    /// <summary>Timed runs of each layer, whole and split, per search trial (the fastest of each is compared).</summary>
    public int SearchTimingSamples { get; init; } = 20;

    /// <summary>
    /// Per-layer ranks, as fractions (0, 1] of the full rank by weight name, overriding the criterion for those layers
    /// (e.g. a rank search's choice, replayed without searching again). Not with <see cref="MinCosine"/>.
    /// </summary>
    public IReadOnlyDictionary<string, double>? LayerRankRatios { get; init; }

    /// <summary>How Conv weights are split.</summary>
    public ConvFactorization Conv { get; init; } = ConvFactorization.Channel;

    /// <summary>The op types to factorize (a subset of Conv, Gemm, MatMul).</summary>
    public IReadOnlySet<string> Ops { get; init; } = DefaultOps;

    /// <summary>Weights with fewer elements are left alone.</summary>
    public long MinElements { get; init; } = 4096;

    /// <summary>
    /// Fold a BatchNormalization that alone follows a Conv into the factors (true): its per-channel scale weights each
    /// output channel's error, and the BatchNormalization node goes away (ONNX Runtime folds it at load anyway).
    /// </summary>
    public bool FoldBatchNorm { get; init; } = true;

    /// <summary>Keep a split only if it has fewer parameters than the weight (true); false keeps it anyway (tests, full-rank checks).</summary>
    public bool RequireFewerParameters { get; init; } = true;

    /// <summary>Restrict the pass to weights with these names; null for every eligible weight.</summary>
    public IReadOnlySet<string>? Weights { get; init; }

    /// <summary>
    /// Calibration data: when set, the factors minimize the error of each layer's outputs on this data instead of
    /// the weight error (data-aware). The feed must be built against the model's inputs.
    /// </summary>
    public IDataFeed? Calibration { get; init; }

    /// <summary>How calibration runs (rows, batch, runtime).</summary>
    public CalibrationOptions CalibrationSettings { get; init; } = new();

    /// <summary>
    /// Data-aware layers are processed in stages of this many layers, in graph order; calibration is re-run on the
    /// partly factorized model before each stage, so later layers see the factorized earlier ones. 1 is the most
    /// faithful (one calibration run per layer), larger stages cost fewer runs.
    /// </summary>
    public int LayersPerStage { get; init; } = 4;

    /// <summary>
    /// Data-aware only: fit each layer's second factor to the original model's outputs (a ridge regression on the
    /// kept components, from statistics pairing the original and the partly factorized model) instead of projecting
    /// the layer's current output. It undoes part of the earlier layers' error, but with little calibration data
    /// (tens of images for 512 channels) it fits noise and generalizes worse, so it is off by default.
    /// </summary>
    public bool CompensateUpstream { get; init; }

    /// <summary>The ridge δ of <see cref="CompensateUpstream"/> as a multiple of the mean kept eigenvalue (larger: closer to no compensation).</summary>
    public double CompensationRidge { get; init; } = 0.1;

    /// <summary>
    /// Data-aware only: shrink the calibration covariance toward the plain weight split by this weight λ in [0, 1]
    /// (0: purely data-aware; 1: the plain SVD of the weight). The output covariance W·Σₓ·Wᵀ becomes
    /// (1−λ)·W·Σₓ·Wᵀ + λ·μ·W·Wᵀ, μ matching the traces — the input covariance shrunk toward a multiple of the identity.
    /// Factors fitted to a few calibration images otherwise favour directions those images happen to use.
    /// </summary>
    public double CovarianceShrinkage { get; init; }

    /// <summary>Options of the randomized SVD used when the rank is known in advance.</summary>
    public RandomizedSvdOptions Randomized { get; init; } = new();

    /// <summary>The criterion set.</summary>
    public RankCriterion Criterion =>
        Energy is not null ? RankCriterion.Energy : RankRatio is not null ? RankCriterion.RankRatio
        : TargetParams is not null ? RankCriterion.TargetParams : MinCosine is not null ? RankCriterion.Search : RankCriterion.Vbmf;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        int set = (Energy is null ? 0 : 1) + (RankRatio is null ? 0 : 1) + (TargetParams is null ? 0 : 1) + (Vbmf ? 1 : 0) + (MinCosine is null ? 0 : 1);
        if (set != 1)
            throw new ArgumentException($"set exactly one of Energy, RankRatio, TargetParams and Vbmf ({set} are set), or MinCosine alone for a rank search.");
        static void Fraction(double? v, string name)
        {
            if (v is double d && !(d > 0 && d <= 1))
                throw new ArgumentException($"{name} is {d}; it must be in (0, 1].", name);
        }
        Fraction(Energy, nameof(Energy));
        Fraction(RankRatio, nameof(RankRatio));
        Fraction(TargetParams, nameof(TargetParams));
        if (MinCosine is double c)
        {
            if (!(c > 0 && c < 1)) throw new ArgumentException($"MinCosine is {c}; it must be in (0, 1).", nameof(MinCosine));
            if (Calibration is null) throw new ArgumentException("MinCosine (the rank search) needs Calibration data to measure the outputs on.", nameof(MinCosine));
            ArgumentNullException.ThrowIfNull(SearchRankRatios, nameof(SearchRankRatios));
            if (SearchRankRatios.Count == 0) throw new ArgumentException("SearchRankRatios is empty; give the rank fractions to try.", nameof(SearchRankRatios));
            foreach (var r in SearchRankRatios) Fraction(r, nameof(SearchRankRatios));
            if (SearchRows < 1) throw new ArgumentException($"SearchRows is {SearchRows}; it must be 1 or more.", nameof(SearchRows));
            if (SearchTimingSamples < 1) throw new ArgumentException($"SearchTimingSamples is {SearchTimingSamples}; it must be 1 or more.", nameof(SearchTimingSamples));
        }
        if (LayerRankRatios is not null)
        {
            if (MinCosine is not null) throw new ArgumentException("LayerRankRatios fixes ranks the rank search (MinCosine) would choose; set one of them.", nameof(LayerRankRatios));
            foreach (var (name, r) in LayerRankRatios)
                if (!(r > 0 && r <= 1)) throw new ArgumentException($"LayerRankRatios['{name}'] is {r}; it must be in (0, 1].", nameof(LayerRankRatios));
        }
        if (MinElements < 0) throw new ArgumentException($"MinElements is {MinElements}; it must be 0 or more.", nameof(MinElements));
        if (!(CompensationRidge >= 0)) throw new ArgumentException($"CompensationRidge is {CompensationRidge}; it must be 0 or more.", nameof(CompensationRidge));
        if (!(CovarianceShrinkage >= 0 && CovarianceShrinkage <= 1))
            throw new ArgumentException($"CovarianceShrinkage is {CovarianceShrinkage}; it must be in [0, 1].", nameof(CovarianceShrinkage));
        if (LayersPerStage < 1) throw new ArgumentException($"LayersPerStage is {LayersPerStage}; it must be 1 or more.", nameof(LayersPerStage));
        ArgumentNullException.ThrowIfNull(Ops, nameof(Ops));
        var unknown = Ops.FirstOrDefault(op => !DefaultOps.Contains(op));
        if (unknown is not null)
            throw new ArgumentException($"op '{unknown}' cannot be factorized; supported: Conv, Gemm, MatMul.", nameof(Ops));
    }
}

/// <summary>Rank choice from a spectrum and a layer's shape.</summary>
internal static class RankChoice
{
    /// <summary>
    /// The rank for energies <paramref name="energies"/> (squared singular values or eigenvalues, descending), a
    /// full rank of <paramref name="fullRank"/>, and a parameter count per unit of rank <paramref name="paramsPerRank"/>
    /// against <paramref name="paramsBefore"/>.
    /// </summary>
    public static int Choose(LowRankOptions o, ReadOnlySpan<double> energies, int fullRank, long paramsPerRank, long paramsBefore)
    {
        int r = o.Criterion switch
        {
            RankCriterion.Energy => ByEnergy(energies, o.Energy!.Value),
            RankCriterion.RankRatio => (int)Math.Round(o.RankRatio!.Value * fullRank),
            RankCriterion.TargetParams => (int)Math.Floor(o.TargetParams!.Value * paramsBefore / paramsPerRank),
            _ => throw new InvalidOperationException("VBMF and search ranks are not chosen from one spectrum."),
        };
        return Math.Clamp(r, 1, fullRank);
    }

    /// <summary>The rank known before any SVD (ratio and parameter criteria), or null for energy and VBMF.</summary>
    public static int? Known(LowRankOptions o, int fullRank, long paramsPerRank, long paramsBefore) =>
        o.Criterion is RankCriterion.Energy or RankCriterion.Vbmf or RankCriterion.Search ? null : Choose(o, [], fullRank, paramsPerRank, paramsBefore);

    /// <summary>
    /// The rank empirical VBMF keeps for an <paramref name="rows"/>×<paramref name="cols"/> matrix with singular values
    /// <paramref name="s"/> (descending, all min(rows, cols) of them): the noise variance σ² minimizes the EVB free energy
    /// over its analytic bounds (golden-section search), and the components above
    /// √(M·σ²·(1+τ̄)(1+α/τ̄)) are kept (Nakajima, Sugiyama, Babacan &amp; Tomioka 2013; L ≤ M, α = L/M, τ̄ = 2.5129·√α).
    /// </summary>
    public static int Vbmf(ReadOnlySpan<double> s, int rows, int cols)
    {
        int l = Math.Min(rows, cols), m = Math.Max(rows, cols);
        int h = Math.Min(l, s.Length);
        if (h < 2) return 1;
        double alpha = (double)l / m;
        double tauBar = 2.5129 * Math.Sqrt(alpha);
        double xuBar = (1 + tauBar) * (1 + alpha / tauBar);
        var sq = new double[h];
        for (int i = 0; i < h; i++) sq[i] = s[i] * s[i];
        int ehUb = Math.Min((int)Math.Ceiling(l / (1 + alpha)) - 1, h) - 1;
        ehUb = Math.Clamp(ehUb, 0, h - 2);
        double upper = sq.Sum() / ((double)l * m);
        double tailMean = 0;
        for (int i = ehUb + 1; i < h; i++) tailMean += sq[i];
        tailMean /= h - ehUb - 1;
        double lower = Math.Max(sq[ehUb + 1] / (m * xuBar), tailMean / m);
        if (!(upper > lower)) lower = upper * 1e-6;
        double sigma2 = GoldenSection(v => FreeEnergy(v, sq, l, m, xuBar), lower, upper);
        double threshold = Math.Sqrt(m * sigma2 * (1 + tauBar) * (1 + alpha / tauBar));
        int rank = 0;
        for (int i = 0; i < h; i++) if (s[i] > threshold) rank++;
        return Math.Max(rank, 1);
    }

    private static double FreeEnergy(double sigma2, double[] sq, int l, int m, double xuBar)
    {
        double alpha = (double)l / m, obj = 0;
        foreach (double v in sq)
        {
            double x = v / (m * sigma2);
            if (x <= xuBar)
            {
                obj += x - Math.Log(x);
                continue;
            }
            double t = 0.5 * (x - (1 + alpha) + Math.Sqrt((x - (1 + alpha)) * (x - (1 + alpha)) - 4 * alpha));
            obj += x - t + Math.Log((t + 1) / x) + alpha * Math.Log(t / alpha + 1);
        }
        return obj + (l - sq.Length) * Math.Log(sigma2);
    }

    private static double GoldenSection(Func<double, double> f, double a, double b)
    {
        double g = (Math.Sqrt(5) - 1) / 2;
        double c = b - g * (b - a), d = a + g * (b - a);
        double fc = f(c), fd = f(d);
        for (int i = 0; i < 200 && b - a > 1e-12 * Math.Abs(b); i++)
        {
            if (fc < fd) { b = d; d = c; fd = fc; c = b - g * (b - a); fc = f(c); }
            else { a = c; c = d; fc = fd; d = a + g * (b - a); fd = f(d); }
        }
        return (a + b) / 2;
    }

    /// <summary>The smallest r with Σ_{i&lt;r} e_i ≥ fraction·Σ e_i.</summary>
    public static int ByEnergy(ReadOnlySpan<double> energies, double fraction)
    {
        double total = 0;
        foreach (var e in energies) total += Math.Max(e, 0);
        if (total <= 0) return 1;
        double kept = 0;
        for (int i = 0; i < energies.Length; i++)
        {
            kept += Math.Max(energies[i], 0);
            // A hair of slack so that fraction 1 reaches full rank despite rounding.
            if (kept >= fraction * total * (1 - 1e-12)) return i + 1;
        }
        return energies.Length;
    }
}
