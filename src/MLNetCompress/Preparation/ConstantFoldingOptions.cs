namespace MLNetCompress.Preparation;

/// <summary>Options of <see cref="ConstantFoldingPass"/>.</summary>
public sealed record ConstantFoldingOptions
{
    /// <summary>
    /// A computed value larger than this (bytes) is not stored as an initializer: the nodes computing it stay
    /// (ConstantOfShape, Expand or Tile can turn a few bytes into a huge tensor). Default 16 MiB.
    /// </summary>
    public long MaxOutputBytes { get; init; } = 16L << 20;

    /// <summary>
    /// A ConstantOfShape whose output would exceed this (bytes) is not even evaluated, so a shape constant
    /// cannot make the pass allocate gigabytes. Default 256 MiB.
    /// </summary>
    public long MaxEvaluationBytes { get; init; } = 256L << 20;

    /// <summary>
    /// Leave a Cast of an 8-bit-or-narrower integer constant (and what it feeds) unfolded, so weights stored as
    /// int8/int4 indices or values stay small on disk; ONNX Runtime folds them at load anyway. Default true.
    /// </summary>
    public bool KeepLowBitStorage { get; init; } = true;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (MaxOutputBytes < 0)
            throw new ArgumentException($"MaxOutputBytes is {MaxOutputBytes}; it must be 0 or more.", nameof(MaxOutputBytes));
        if (MaxEvaluationBytes < 0)
            throw new ArgumentException($"MaxEvaluationBytes is {MaxEvaluationBytes}; it must be 0 or more.", nameof(MaxEvaluationBytes));
    }
}
