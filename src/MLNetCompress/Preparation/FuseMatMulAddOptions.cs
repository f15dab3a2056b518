namespace MLNetCompress.Preparation;

/// <summary>Options of <see cref="FuseMatMulAddPass"/>.</summary>
public sealed record FuseMatMulAddOptions
{
    /// <summary>How many element-wise nodes back the pass follows to prove an activation is 2-D when no shape is
    /// declared for it (default 64: an MLP's whole chain of Relu/Add/... between its layers).</summary>
    public int MaxRankTrace { get; init; } = 64;
}
