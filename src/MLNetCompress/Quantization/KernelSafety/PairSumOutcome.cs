using System.Globalization;

namespace MLNetCompress.Quantization.KernelSafety;

/// <summary>What <see cref="GuardedInt8.TryQuantize"/> found and did for one weight.</summary>
/// <param name="Guard">The guard asked for.</param>
/// <param name="LargestPairBefore">The largest same-sign pair of plain 8-bit codes in any output channel.</param>
/// <param name="LargestPairAfter">The same of the codes written (for <see cref="PairSumGuard.Uint8Weights"/> and
/// <see cref="PairSumGuard.ReducedRangeActivations"/> the codes are unchanged: the kernel or the activation changes).</param>
/// <param name="Limit">The largest safe pair for 8-bit activations (<see cref="PairSums.PairLimit"/>).</param>
/// <param name="Channels">Output channels (accumulators).</param>
/// <param name="ChannelsWidened">Channels whose scale was widened.</param>
/// <param name="MeanScaleGrowth">Geometric mean over the scales of new scale / 8-bit scale (1 when none changed): the
/// weights' resolution lost, in the same units (2 = one bit).</param>
public sealed record PairSumOutcome(PairSumGuard Guard, int LargestPairBefore, int LargestPairAfter, int Limit, int Channels, int ChannelsWidened,
    double MeanScaleGrowth = 1)
{
    /// <summary>True when plain 8-bit codes could clip on a CPU without VNNI.</summary>
    public bool AtRisk => LargestPairBefore > Limit;

    /// <summary>True when the guard changed the layer (it was at risk and a guard is on).</summary>
    public bool Treated => AtRisk && Guard != PairSumGuard.None;

    /// <summary>One phrase for the layer table, or null when nothing needed doing.</summary>
    public string? Describe() => !AtRisk ? null : Guard switch
    {
        PairSumGuard.PairSafeWeights => string.Create(CultureInfo.InvariantCulture,
            $"pair-safe scales on {ChannelsWidened}/{Channels} channels, {MeanScaleGrowth:0.00}x wider (largest same-sign pair {LargestPairBefore} → {LargestPairAfter} codes)"),
        PairSumGuard.SevenBitWeights => string.Create(CultureInfo.InvariantCulture,
            $"7-bit weights (largest same-sign pair {LargestPairBefore} → {LargestPairAfter} codes)"),
        PairSumGuard.ReducedRangeActivations => "7-bit input activations",
        PairSumGuard.Uint8Weights => "uint8 weights (U8U8 kernel)",
        _ => string.Create(CultureInfo.InvariantCulture,
            $"UNGUARDED: same-sign pairs up to {LargestPairBefore} codes may clip without VNNI"),
    };
}
