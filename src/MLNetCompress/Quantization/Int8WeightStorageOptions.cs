using System.Collections.Frozen;

namespace MLNetCompress.Quantization;

/// <summary>Options of <see cref="Int8WeightStoragePass"/>.</summary>
public sealed record Int8WeightStorageOptions
{
    /// <summary>The ops whose weights are stored as int8 by default: Conv, ConvTranspose, Gemm, MatMul.</summary>
    public static IReadOnlySet<string> DefaultOps { get; } =
        new[] { "Conv", "ConvTranspose", "Gemm", "MatMul" }.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>Every op the pass knows the weight inputs of: the defaults plus Gather (embedding tables).</summary>
    public static IReadOnlySet<string> SupportedOps { get; } = WeightInputs.SupportedOps.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>Weights with fewer elements are left in float: their bytes do not matter and the extra nodes would.</summary>
    public long MinElements { get; init; } = 1024;

    /// <summary>One scale per output channel (true, the default) or one per tensor.</summary>
    public bool PerChannel { get; init; } = true;

    /// <summary>The op types whose weight inputs are stored as int8 (ai.onnx domain); a subset of <see cref="SupportedOps"/>.</summary>
    public IReadOnlySet<string> Ops { get; init; } = DefaultOps;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (MinElements < 0)
            throw new ArgumentException($"MinElements is {MinElements}; it must be 0 or more.", nameof(MinElements));
        ArgumentNullException.ThrowIfNull(Ops, nameof(Ops));
        var unknown = Ops.FirstOrDefault(op => !SupportedOps.Contains(op));
        if (unknown is not null)
            throw new ArgumentException($"op '{unknown}' has no known weight input; supported: {string.Join(", ", SupportedOps.Order(StringComparer.Ordinal))}.", nameof(Ops));
    }
}
