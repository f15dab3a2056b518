using System.Collections.Frozen;
using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Pruning;

namespace MLNetCompress.Clustering;

/// <summary>Options of <see cref="KMeansClusteringPass"/>.</summary>
public sealed record KMeansClusteringOptions
{
    /// <summary>The ops whose weights are clustered by default: Conv, ConvTranspose, Gemm, MatMul.</summary>
    public static IReadOnlySet<string> DefaultOps { get; } = PruningOptions.DefaultOps;

    /// <summary>Centroids per layer, 2..256 (a pruned layer's zero centroid counts as one). 16 or fewer store 4-bit indices.</summary>
    public int Clusters { get; init; } = 16;

    /// <summary>How the centroids start.</summary>
    public KMeansInit Init { get; init; } = KMeansInit.KMeansPlusPlus;

    /// <summary>Seed of k-means++ (the same seed gives the same model).</summary>
    public int Seed { get; init; }

    /// <summary>Lloyd iterations at most per layer (each is O(K log n), so the default runs to convergence).</summary>
    public int MaxIterations { get; init; } = 10_000;

    /// <summary>Keep exact zeros (a pruned layer's) exactly zero with a dedicated zero centroid at index 0.</summary>
    public bool PreserveZeros { get; init; } = true;

    /// <summary>Weights left alone, by weight name or by the name of the node that reads them.</summary>
    public IReadOnlySet<string> Exclude { get; init; } = FrozenSet<string>.Empty;

    /// <summary>The op types whose weights are clustered; a subset of <see cref="DefaultOps"/>.</summary>
    public IReadOnlySet<string> Ops { get; init; } = DefaultOps;

    /// <summary>Weights with fewer elements are left in float (the codebook and nodes would outweigh them).</summary>
    public long MinElements { get; init; } = 1024;

    /// <summary>
    /// Data-aware refinement: with every weight's centroid fixed, each layer's codebook is re-fitted by least squares to
    /// the layer's outputs on its real inputs from <see cref="Calibration"/> (layers in graph order, each seeing the
    /// earlier ones clustered and refined), and kept only where that lowers the output error. A pruned layer's zero
    /// centroid stays exactly 0. Layers pruning reconstruction cannot re-fit (grouped Conv, ConvTranspose, weights read by
    /// several nodes, subgraphs) keep the k-means codebook, with a note.
    /// </summary>
    public bool Refine { get; init; }

    /// <summary>The calibration data codebooks are refined on; required by <see cref="Refine"/>, unused otherwise.</summary>
    public IDataFeed? Calibration { get; init; }

    /// <summary>Rows, batch size and runtime of the refinement's calibration runs (one run per refined layer).</summary>
    public CalibrationOptions RefineSettings { get; init; } = new() { MaxRows = 256, BatchSize = 32, MaxVectorsPerRow = 256 };

    /// <summary>
    /// Ridge of the refinement, λ as a fraction of each centroid's own diagonal of the normal equations: the fit is
    /// pulled towards the k-means centroids by λ·A_aa·(c_a − c⁰_a)², which keeps it stable when few calibration
    /// vectors reach a centroid. 0 is plain least squares.
    /// </summary>
    public double RefineDamping { get; init; } = 1e-3;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (Refine && Calibration is null)
            throw new ArgumentException("Refine needs calibration data: set Calibration (CLI: --calibration SPEC).", nameof(Calibration));
        if (!(RefineDamping >= 0 && double.IsFinite(RefineDamping)))
            throw new ArgumentException($"RefineDamping is {RefineDamping}; it must be a finite number ≥ 0.", nameof(RefineDamping));
        ArgumentNullException.ThrowIfNull(RefineSettings, nameof(RefineSettings));
        if (RefineSettings.MaxRows < 1 || RefineSettings.BatchSize < 1 || RefineSettings.MaxVectorsPerRow < 1)
            throw new ArgumentException("RefineSettings: MaxRows, BatchSize and MaxVectorsPerRow must be 1 or more.", nameof(RefineSettings));
        if (Clusters is < 2 or > 256) throw new ArgumentException($"Clusters is {Clusters}; it must be in [2, 256].", nameof(Clusters));
        if (MaxIterations < 0) throw new ArgumentException($"MaxIterations is {MaxIterations}; it must be 0 or more.", nameof(MaxIterations));
        if (!Enum.IsDefined(Init)) throw new ArgumentException($"Init {Init} is not a known initialization.", nameof(Init));
        if (MinElements < 0) throw new ArgumentException($"MinElements is {MinElements}; it must be 0 or more.", nameof(MinElements));
        ArgumentNullException.ThrowIfNull(Ops, nameof(Ops));
        ArgumentNullException.ThrowIfNull(Exclude, nameof(Exclude));
        var unknown = Ops.FirstOrDefault(op => !DefaultOps.Contains(op));
        if (unknown is not null)
            throw new ArgumentException($"op '{unknown}' cannot be clustered; supported: {string.Join(", ", DefaultOps.Order(StringComparer.Ordinal))}.", nameof(Ops));
    }
}
