namespace MLNetCompress.Preparation;

/// <summary>Options of <see cref="RemoveIdentityPass"/>.</summary>
public sealed record RemoveIdentityOptions
{
    /// <summary>Remove Identity nodes (default true).</summary>
    public bool Identity { get; init; } = true;

    /// <summary>Remove Dropout nodes, which pass their input through at inference (default true).</summary>
    public bool Dropout { get; init; } = true;
}
