namespace MLNetCompress.Preparation;

/// <summary>Options of <see cref="OpsetUpgradePass"/>.</summary>
public sealed record OpsetUpgradeOptions
{
    /// <summary>The lowest target the pass accepts.</summary>
    public const int MinTargetOpset = 7;

    /// <summary>The ai.onnx opset to upgrade to (7 to 26; ONNX Runtime 1.31 loads up to 26).</summary>
    public required long TargetOpset { get; init; }

    /// <summary>Raise the model's IR version to the lowest one that carries the target opset, when it is lower (default true).</summary>
    public bool RaiseIrVersion { get; init; } = true;

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad option.</summary>
    public void Validate()
    {
        if (TargetOpset < MinTargetOpset || TargetOpset > OpsetChangelog.MaxOpset)
            throw new ArgumentException(
                $"target opset {TargetOpset} is out of range; choose {MinTargetOpset} to {OpsetChangelog.MaxOpset} (ONNX Runtime 1.31 loads ai.onnx opsets up to {OpsetChangelog.MaxOpset}).",
                nameof(TargetOpset));
    }
}
