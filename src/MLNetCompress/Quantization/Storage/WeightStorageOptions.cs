namespace MLNetCompress.Quantization.Storage;

/// <summary>Options of <see cref="WeightStoragePass"/>.</summary>
public sealed record WeightStorageOptions
{
    /// <summary>The ops whose weights are stored by default: Conv, ConvTranspose, Gemm, MatMul.</summary>
    public static IReadOnlySet<string> DefaultOps { get; } = Int8WeightStorageOptions.DefaultOps;

    /// <summary>Every op the pass knows the weight inputs of: the defaults plus Gather (embedding tables).</summary>
    public static IReadOnlySet<string> SupportedOps { get; } = Int8WeightStorageOptions.SupportedOps;

    /// <summary>Bits per stored value and their meaning (default int8).</summary>
    public StorageFormat Format { get; init; } = StorageFormat.Int8;

    /// <summary>One scale per output channel (true, the default) or one for the whole tensor.</summary>
    public bool PerChannel { get; init; } = true;

    /// <summary>
    /// When set, one scale per block of this many consecutive values along the reduction axis inside each
    /// output channel (the input channels and kernel of a Conv, K of a MatMul); null for one scale per channel.
    /// A multiple of 8, so that every block starts on a whole byte. Needs <see cref="PerChannel"/>.
    /// </summary>
    public int? BlockSize { get; init; }

    /// <summary>
    /// Integer formats: choose each block's scale among <c>max|w| / QMax · {1, 0.95, …, 0.2}</c> for the smallest squared
    /// error, clipping the largest values, instead of <c>max|w| / QMax</c> (which bounds every error by half a step).
    /// Matters most for int2, whose three levels otherwise round most weights to zero. No effect on binary (its mean |w| is already the best scale).
    /// Not allowed with uint8/uint4, whose scale and zero point already fit each block's min..max range.
    /// </summary>
    public bool Clip { get; init; }

    /// <summary>Weights with fewer elements are left in float: their bytes do not matter and the extra nodes would.</summary>
    public long MinElements { get; init; } = 1024;

    /// <summary>The op types whose weight inputs are stored (ai.onnx domain); a subset of <see cref="SupportedOps"/>.</summary>
    public IReadOnlySet<string> Ops { get; init; } = DefaultOps;

    /// <summary>Names of nodes whose weights stay float (a weight shared by several nodes: its first reader's name).</summary>
    public IReadOnlySet<string> ExcludeNodes { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>
    /// Use ONNX's own int4 type with a <c>Cast</c> to float where the model's opset allows it (21 and up);
    /// false always uses the packed uint8 bytes and lookup table, which work from opset 7.
    /// </summary>
    public bool UseNativeInt4 { get; init; } = true;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Format))
            throw new ArgumentException($"Format {(int)Format} is not a storage format; use int8, uint8, int4, uint4, int2 or binary.", nameof(Format));
        if (Clip && Format.IsAsymmetric())
            throw new ArgumentException($"Clip applies to the symmetric formats (int8, int4, int2); {Format.Name()} already fits each block's min..max range with a zero point.", nameof(Clip));
        if (MinElements < 0)
            throw new ArgumentException($"MinElements is {MinElements}; it must be 0 or more.", nameof(MinElements));
        if (BlockSize is int b)
        {
            if (b < 8 || b % 8 != 0)
                throw new ArgumentException($"BlockSize is {b}; it must be a multiple of 8 (8, 16, 32, ...) so that blocks start on whole bytes.", nameof(BlockSize));
            if (!PerChannel)
                throw new ArgumentException("BlockSize needs PerChannel: blocks split each output channel's values.", nameof(BlockSize));
        }
        ArgumentNullException.ThrowIfNull(Ops, nameof(Ops));
        ArgumentNullException.ThrowIfNull(ExcludeNodes, nameof(ExcludeNodes));
        var unknown = Ops.FirstOrDefault(op => !SupportedOps.Contains(op));
        if (unknown is not null)
            throw new ArgumentException($"op '{unknown}' has no known weight input; supported: {string.Join(", ", SupportedOps.Order(StringComparer.Ordinal))}.", nameof(Ops));
    }
}
