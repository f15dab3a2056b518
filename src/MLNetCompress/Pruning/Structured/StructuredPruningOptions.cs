using System.Collections.Frozen;
using MLNetCompress.Calibration;
using MLNetCompress.Data;

namespace MLNetCompress.Pruning.Structured;

/// <summary>How <see cref="StructuredPruningPass"/> ranks the output channels of a group.</summary>
public enum ChannelCriterion
{
    /// <summary>The L1 norm of each filter, scaled by |γ/σ| of a BatchNormalization right after it (the filter the model
    /// really applies); normalized per layer and summed over the layers of a residual group.</summary>
    L1,

    /// <summary>The mean |activation| of each channel where the next layers read it, on calibration data (needs
    /// <see cref="StructuredPruningOptions.Calibration"/>).</summary>
    Activation,

    /// <summary>Greedy, one channel at a time: the channel whose removal leaves the least error in the consumers' outputs
    /// after the least-squares reconstruction (Optimal Brain Surgeon over input channels, with the channel covariance
    /// from calibration data as the Hessian). Needs <see cref="StructuredPruningOptions.Reconstruct"/>.</summary>
    Reconstruction,
}

/// <summary>
/// Options of <see cref="StructuredPruningPass"/>: which fraction of each channel group's output channels to remove,
/// how they are ranked, and the limits that keep the result fast and safe.
/// </summary>
public sealed record StructuredPruningOptions
{
    /// <summary>Fraction of each group's channels to remove, in [0, 1) (before rounding to <see cref="RoundTo"/>).</summary>
    public double Fraction { get; init; }

    /// <summary>Per-layer fractions that override <see cref="Fraction"/>, by the name of a Conv node or of its weight;
    /// a residual group takes the smallest fraction any of its layers asks for.</summary>
    public IReadOnlyDictionary<string, double> LayerFractions { get; init; } = FrozenDictionary<string, double>.Empty;

    /// <summary>How channels are ranked (default <see cref="ChannelCriterion.L1"/>).</summary>
    public ChannelCriterion Criterion { get; init; } = ChannelCriterion.L1;

    /// <summary>Layers whose output channels are kept, by Conv node name or weight name; the whole group they belong to is kept.</summary>
    public IReadOnlySet<string> Exclude { get; init; } = FrozenSet<string>.Empty;

    /// <summary>Prune groups whose channels residual Adds tie across several layers (default true). Such a group's
    /// channels run through the whole stage, so removing them costs more fidelity than a layer's own channels.</summary>
    public bool ResidualGroups { get; init; } = true;

    /// <summary>A group never keeps fewer channels than this (default 8).</summary>
    public int KeepAtLeast { get; init; } = 8;

    /// <summary>The kept channel count is rounded to the nearest multiple of this (1 = no rounding; 8 suits SIMD kernels).</summary>
    public int RoundTo { get; init; } = 1;

    /// <summary>Re-fit the next layers on calibration data after removal: each removed channel is replaced by its
    /// least-squares estimate from the kept ones (plus a constant), folded into the consumers' weights and biases.</summary>
    public bool Reconstruct { get; init; }

    /// <summary>With <see cref="Reconstruct"/>: re-fit the groups one after another in graph order, each on statistics
    /// of the model with the earlier groups already pruned and re-fitted, paired with the original model's (the fit
    /// targets the original consumer inputs, so later layers absorb earlier errors). One calibration run of both
    /// models per group instead of one run in all: slower to compress, closer to the original.</summary>
    public bool Sequential { get; init; }

    /// <summary>Calibration data for <see cref="ChannelCriterion.Activation"/> and <see cref="Reconstruct"/>.</summary>
    public IDataFeed? Calibration { get; init; }

    /// <summary>Rows, batch size and runtime of the one calibration run.</summary>
    public CalibrationOptions CalibrationSettings { get; init; } = new() { MaxRows = 256, BatchSize = 16, MaxVectorsPerRow = 256 };

    /// <summary>Ridge term of the reconstruction, as a fraction of the mean variance of the kept channels.</summary>
    public double Damping { get; init; } = 0.01;

    /// <summary>The fraction that applies to a layer (its override, else <see cref="Fraction"/>).</summary>
    internal double FractionFor(string nodeName, string weightName) =>
        LayerFractions.TryGetValue(nodeName, out double f) || LayerFractions.TryGetValue(weightName, out f) ? f : Fraction;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (!(Fraction >= 0 && Fraction < 1))
            throw new ArgumentException($"Fraction is {Fraction}; it must be in [0, 1).", nameof(Fraction));
        ArgumentNullException.ThrowIfNull(LayerFractions, nameof(LayerFractions));
        ArgumentNullException.ThrowIfNull(Exclude, nameof(Exclude));
        ArgumentNullException.ThrowIfNull(CalibrationSettings, nameof(CalibrationSettings));
        foreach (var (name, v) in LayerFractions)
            if (!(v >= 0 && v < 1))
                throw new ArgumentException($"LayerFractions['{name}'] is {v}; it must be in [0, 1).", nameof(LayerFractions));
        if (KeepAtLeast < 1)
            throw new ArgumentException($"KeepAtLeast is {KeepAtLeast}; a layer must keep at least 1 channel.", nameof(KeepAtLeast));
        if (RoundTo < 1)
            throw new ArgumentException($"RoundTo is {RoundTo}; it must be 1 or more.", nameof(RoundTo));
        if (!Enum.IsDefined(Criterion))
            throw new ArgumentException($"Criterion {Criterion} is not known.", nameof(Criterion));
        if (Criterion == ChannelCriterion.Activation && Calibration is null)
            throw new ArgumentException("the Activation criterion needs Calibration data.", nameof(Calibration));
        if (Criterion == ChannelCriterion.Reconstruction && !Reconstruct)
            throw new ArgumentException("the Reconstruction criterion ranks channels by the error left after reconstruction: it needs Reconstruct.", nameof(Criterion));
        if (Reconstruct && Calibration is null)
            throw new ArgumentException("Reconstruct needs Calibration data (the channels are re-fitted on it).", nameof(Calibration));
        if (Sequential && !Reconstruct)
            throw new ArgumentException("Sequential re-fits the groups one after another: it needs Reconstruct.", nameof(Sequential));
        if (!(Damping >= 0 && double.IsFinite(Damping)))
            throw new ArgumentException($"Damping is {Damping}; it must be a finite number ≥ 0.", nameof(Damping));
    }

    /// <summary>How many of <paramref name="channels"/> to keep at <paramref name="fraction"/> removed.</summary>
    internal int KeptCount(int channels, double fraction)
    {
        double target = channels * (1 - fraction);
        int keep = RoundTo <= 1 ? (int)Math.Round(target, MidpointRounding.AwayFromZero)
            : Math.Max(RoundTo, (int)Math.Round(target / RoundTo, MidpointRounding.AwayFromZero) * RoundTo);
        return Math.Min(channels, Math.Max(keep, Math.Min(KeepAtLeast, channels)));
    }
}
