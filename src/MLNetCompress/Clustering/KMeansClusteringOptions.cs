using System.Collections.Frozen;
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

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
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
