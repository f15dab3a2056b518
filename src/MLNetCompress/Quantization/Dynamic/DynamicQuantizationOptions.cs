using System.Collections.Frozen;

namespace MLNetCompress.Quantization.Dynamic;

/// <summary>Options of <see cref="DynamicQuantizationPass"/>.</summary>
public sealed record DynamicQuantizationOptions
{
    /// <summary>MatMuls whose weight has fewer elements stay in float: the quantize step would cost more than it saves.</summary>
    public long MinElements { get; init; } = 1024;

    /// <summary>One weight scale per output column N (true, the default) or one for the whole weight.</summary>
    public bool PerChannel { get; init; } = true;

    /// <summary>Names of MatMul nodes to leave in float.</summary>
    public IReadOnlySet<string> ExcludeNodes { get; init; } = FrozenSet<string>.Empty;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (MinElements < 0)
            throw new ArgumentException($"MinElements is {MinElements}; it must be 0 or more.", nameof(MinElements));
        ArgumentNullException.ThrowIfNull(ExcludeNodes, nameof(ExcludeNodes));
    }
}
