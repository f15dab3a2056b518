namespace MLNetCompress.Preparation;

/// <summary>Options of <see cref="FoldBatchNormPass"/>.</summary>
public sealed record FoldBatchNormOptions
{
    /// <summary>Fold into Conv (default true).</summary>
    public bool Conv { get; init; } = true;

    /// <summary>Fold into ConvTranspose (default true).</summary>
    public bool ConvTranspose { get; init; } = true;

    /// <summary>Fold into Gemm (default true).</summary>
    public bool Gemm { get; init; } = true;

    internal bool Allows(string opType) => opType switch
    {
        "Conv" => Conv,
        "ConvTranspose" => ConvTranspose,
        "Gemm" => Gemm,
        _ => false,
    };
}
