using MLNetCompress.Calibration;
using MLNetCompress.Data;

namespace MLNetCompress.Pruning;

/// <summary>Options of <see cref="ReconstructionPass"/>: which weights to prune and how, and the data to re-fit them on.</summary>
public sealed record ReconstructionOptions
{
    /// <summary>How the mask is chosen (sparsity, global, pattern, exclusions); the mask is kept as it is.</summary>
    public required PruningOptions Pruning { get; init; }

    /// <summary>Calibration data: the layers' inputs are recorded on it.</summary>
    public required IDataFeed Calibration { get; init; }

    /// <summary>Rows, batch size and runtime of the calibration runs (one run per re-fitted layer).</summary>
    public CalibrationOptions CalibrationSettings { get; init; } = new() { MaxRows = 1024, BatchSize = 64 };

    /// <summary>λ as a fraction of the mean of diag(XᵀX): the fit is pulled towards the original weights by λ‖ŵ−w‖²,
    /// which keeps it stable when calibration has fewer vectors than a layer has inputs.</summary>
    public double Damping { get; init; } = 0.01;

    /// <summary>The pruning options with <see cref="Calibration"/> as their calibration data when they have none (a
    /// sensitivity allocation measures the layers on the same data they are re-fitted on).</summary>
    internal PruningOptions EffectivePruning => Pruning.Calibration is null ? Pruning with { Calibration = Calibration } : Pruning;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Pruning, nameof(Pruning));
        ArgumentNullException.ThrowIfNull(Calibration, nameof(Calibration));
        ArgumentNullException.ThrowIfNull(CalibrationSettings, nameof(CalibrationSettings));
        EffectivePruning.Validate();
        if (!(Damping >= 0 && double.IsFinite(Damping)))
            throw new ArgumentException($"Damping is {Damping}; it must be a finite number ≥ 0.", nameof(Damping));
    }
}
