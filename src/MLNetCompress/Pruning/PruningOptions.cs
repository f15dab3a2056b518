using System.Collections.Frozen;
using System.Globalization;
using MLNetCompress.Data;

namespace MLNetCompress.Pruning;

/// <summary>An N:M pattern: at most N non-zero values in every run of M along a layer's reduction axis (2:4 for sparse tensor cores).</summary>
/// <param name="N">Values kept per group.</param>
/// <param name="M">Group length.</param>
public readonly record struct NMPattern(int N, int M)
{
    /// <summary>The sparsity the pattern alone gives: 1 − N/M.</summary>
    public double Sparsity => 1 - (double)N / M;

    /// <summary>Parses <c>N:M</c>, e.g. <c>2:4</c>.</summary>
    /// <exception cref="FormatException">Not two integers 0 ≤ N &lt; M ≤ 64 separated by a colon.</exception>
    public static NMPattern Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split(':');
        if (parts.Length == 2
            && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int n)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int m)
            && n < m && m <= 64)
            return new NMPattern(n, m);
        throw new FormatException($"'{text}' is not an N:M pattern such as 2:4 (0 ≤ N < M ≤ 64).");
    }

    /// <inheritdoc />
    public override string ToString() => $"{N}:{M}";
}

/// <summary>How a total <see cref="PruningOptions.Sparsity"/> is shared out among the layers.</summary>
public enum SparsityAllocation
{
    /// <summary>Every layer gets the same sparsity.</summary>
    Uniform,

    /// <summary>One magnitude threshold over all layers' weights: big, redundant layers lose more.</summary>
    Global,

    /// <summary>Each layer's damage to the model's outputs is measured on calibration data at a grid of sparsities
    /// (<see cref="SensitivityAllocation"/>); sparsities are then chosen to reach the total with the least summed damage,
    /// so sensitive layers keep more weights. Needs <see cref="PruningOptions.Calibration"/>.</summary>
    Sensitivity,
}

/// <summary>
/// Options of <see cref="MagnitudePruningPass"/>. Give a criterion — <see cref="Sparsity"/> (per layer, or shared out
/// over all layers by <see cref="Allocation"/>) or <see cref="StdRate"/> — and/or a <see cref="Pattern"/>. With both a pattern
/// and a criterion, the pattern is applied first and the criterion prunes further among what it kept.
/// </summary>
public sealed record PruningOptions
{
    /// <summary>The ops whose weights are pruned by default: Conv, ConvTranspose, Gemm, MatMul.</summary>
    public static IReadOnlySet<string> DefaultOps { get; } = LayerWeights.DefaultOps.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>Target fraction of zeros in [0, 1): per layer, or over all pruned weights together when <see cref="Global"/>.</summary>
    public double? Sparsity { get; init; }

    /// <summary>The classic rule (Han et al.): zero every |w| ≤ rate × the layer's standard deviation.</summary>
    public double? StdRate { get; init; }

    /// <summary>How <see cref="Sparsity"/> is shared out: the same for every layer (default), one global threshold, or by
    /// measured sensitivity. Anything but <see cref="SparsityAllocation.Uniform"/> makes it a total over the pruned weights.</summary>
    public SparsityAllocation Allocation { get; init; }

    /// <summary>Shorthand for <see cref="Allocation"/> = <see cref="SparsityAllocation.Global"/> (one magnitude threshold
    /// over all layers' weights; needs <see cref="Sparsity"/>). Setting it false turns a global allocation back to uniform.</summary>
    public bool Global
    {
        get => Allocation == SparsityAllocation.Global;
        init
        {
            if (value) Allocation = SparsityAllocation.Global;
            else if (Allocation == SparsityAllocation.Global) Allocation = SparsityAllocation.Uniform;
        }
    }

    /// <summary>Calibration data for <see cref="SparsityAllocation.Sensitivity"/> (the layers' damage is measured on it).</summary>
    public IDataFeed? Calibration { get; init; }

    /// <summary>Grid, rows and runtime of the sensitivity measurement.</summary>
    public SensitivityOptions SensitivitySettings { get; init; } = new();

    /// <summary>An N:M pattern along each layer's reduction axis (input channels), or null.</summary>
    public NMPattern? Pattern { get; init; }

    /// <summary>Per-weight sparsity targets that override the others for those weights (by weight name).</summary>
    public IReadOnlyDictionary<string, double> LayerSparsity { get; init; } = FrozenDictionary<string, double>.Empty;

    /// <summary>Weights left alone, by weight name or by the name of the node that reads them.</summary>
    public IReadOnlySet<string> Exclude { get; init; } = FrozenSet<string>.Empty;

    /// <summary>The op types whose weights are pruned; a subset of <see cref="DefaultOps"/>.</summary>
    public IReadOnlySet<string> Ops { get; init; } = DefaultOps;

    /// <summary>Weights with fewer elements are left alone (small first layers are sensitive and weigh nothing).</summary>
    public long MinElements { get; init; } = 1024;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (Sparsity is double s && !(s >= 0 && s < 1))
            throw new ArgumentException($"Sparsity is {s}; it must be in [0, 1).", nameof(Sparsity));
        if (StdRate is double r && !(r >= 0 && double.IsFinite(r)))
            throw new ArgumentException($"StdRate is {r}; it must be a finite number ≥ 0.", nameof(StdRate));
        if (Sparsity is not null && StdRate is not null)
            throw new ArgumentException("give Sparsity or StdRate, not both.", nameof(StdRate));
        if (Sparsity is null && StdRate is null && Pattern is null && LayerSparsity.Count == 0)
            throw new ArgumentException("give a criterion: Sparsity, StdRate, Pattern or LayerSparsity.", nameof(Sparsity));
        if (!Enum.IsDefined(Allocation))
            throw new ArgumentException($"Allocation {(int)Allocation} is not one of {string.Join(", ", Enum.GetNames<SparsityAllocation>())}.", nameof(Allocation));
        if (Allocation == SparsityAllocation.Global && Sparsity is null)
            throw new ArgumentException("Global needs Sparsity (one threshold chosen to reach it over all layers).", nameof(Global));
        if (Allocation == SparsityAllocation.Sensitivity)
        {
            if (Sparsity is null)
                throw new ArgumentException("Sensitivity allocation needs Sparsity (the total it shares out among the layers).", nameof(Allocation));
            if (Calibration is null)
                throw new ArgumentException("Sensitivity allocation needs calibration data: set PruningOptions.Calibration (CLI: --calibration SPEC).", nameof(Calibration));
            ArgumentNullException.ThrowIfNull(SensitivitySettings, nameof(SensitivitySettings));
            SensitivitySettings.Validate();
            if (Sparsity > SensitivitySettings.MaxSparsity)
                throw new ArgumentException($"Sparsity {Sparsity} is above SensitivitySettings.MaxSparsity {SensitivitySettings.MaxSparsity}, the most any layer is measured at; raise it.", nameof(Sparsity));
        }
        if (Pattern is { } p && !(p.N >= 0 && p.N < p.M && p.M <= 64))
            throw new ArgumentException($"pattern {p} is not N:M with 0 ≤ N < M ≤ 64.", nameof(Pattern));
        if (MinElements < 0)
            throw new ArgumentException($"MinElements is {MinElements}; it must be 0 or more.", nameof(MinElements));
        ArgumentNullException.ThrowIfNull(Ops, nameof(Ops));
        ArgumentNullException.ThrowIfNull(Exclude, nameof(Exclude));
        ArgumentNullException.ThrowIfNull(LayerSparsity, nameof(LayerSparsity));
        var unknown = Ops.FirstOrDefault(op => !DefaultOps.Contains(op));
        if (unknown is not null)
            throw new ArgumentException($"op '{unknown}' cannot be pruned; supported: {string.Join(", ", LayerWeights.DefaultOps)}.", nameof(Ops));
        foreach (var (name, v) in LayerSparsity)
            if (!(v >= 0 && v < 1))
                throw new ArgumentException($"LayerSparsity['{name}'] is {v}; it must be in [0, 1).", nameof(LayerSparsity));
    }
}
