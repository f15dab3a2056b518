using System.Collections.Frozen;
using MLNetCompress.Quantization.KernelSafety;

namespace MLNetCompress.Quantization.Dynamic;

/// <summary>Options of <see cref="DynamicQuantizationPass"/>.</summary>
public sealed record DynamicQuantizationOptions
{
    /// <summary>MatMuls whose weight has fewer elements stay in float: the quantize step would cost more than it saves.</summary>
    public long MinElements { get; init; } = 1024;

    /// <summary>One weight scale per output column N (true, the default) or one for the whole weight.</summary>
    public bool PerChannel { get; init; } = true;

    /// <summary>How MatMuls whose u8×s8 pair sums could clip on x86 CPUs without VNNI are kept right there (default
    /// <see cref="PairSumGuard.PairSafeWeights"/>; see <see cref="PairSumGuard"/>). The activations are quantized at
    /// run time to the full uint8 range, so <see cref="PairSumGuard.ReducedRangeActivations"/> is not offered.</summary>
    public PairSumGuard Guard { get; init; } = PairSumGuard.PairSafeWeights;

    /// <summary>Constant Gather tables (word and position embeddings) are stored int8 per row too: the rows a Gather reads
    /// are dequantized after it (<c>Gather → Cast → Mul(Gather(scale))</c>), so file and memory shrink about 4×.
    /// Off by default.</summary>
    public bool QuantizeEmbeddings { get; init; }

    /// <summary>Gather tables with fewer elements stay float.</summary>
    public long MinEmbeddingElements { get; init; } = 65536;

    /// <summary>Names of MatMul (or Gather) nodes to leave in float.</summary>
    public IReadOnlySet<string> ExcludeNodes { get; init; } = FrozenSet<string>.Empty;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (MinElements < 0)
            throw new ArgumentException($"MinElements is {MinElements}; it must be 0 or more.", nameof(MinElements));
        if (MinEmbeddingElements < 0)
            throw new ArgumentException($"MinEmbeddingElements is {MinEmbeddingElements}; it must be 0 or more.", nameof(MinEmbeddingElements));
        ArgumentNullException.ThrowIfNull(ExcludeNodes, nameof(ExcludeNodes));
        if (!Enum.IsDefined(Guard)) throw new ArgumentException($"unknown pair-sum guard {Guard}.", nameof(Guard));
        if (Guard == PairSumGuard.ReducedRangeActivations)
            throw new ArgumentException("dynamic quantization cannot use 7-bit activations: ONNX Runtime quantizes them at run time " +
                                        "to the full uint8 range; use PairSafeWeights or Uint8Weights.", nameof(Guard));
    }
}
