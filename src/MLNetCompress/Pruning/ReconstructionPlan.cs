using System.Globalization;

namespace MLNetCompress.Pruning;

/// <summary>What <see cref="ReconstructionPass"/> decided: the pruning plan with re-fitted values, and the output errors.</summary>
public sealed class ReconstructionPlan
{
    internal ReconstructionPlan(PruningPlan pruning, IReadOnlyList<ReconstructedLayer> layers, IReadOnlyList<string> notes)
    {
        Pruning = pruning;
        Layers = layers;
        Notes = notes;
    }

    /// <summary>The pruned weights; the values of the re-fitted ones are the re-fitted values.</summary>
    public PruningPlan Pruning { get; }

    /// <summary>The re-fitted layers, in graph order.</summary>
    public IReadOnlyList<ReconstructedLayer> Layers { get; }

    /// <summary>Pruned weights kept as magnitude pruning left them, with the reason.</summary>
    public IReadOnlyList<string> Notes { get; }
}

/// <summary>One re-fitted weight and its relative output error ‖X(w−ŵ)‖²/‖Xw‖² on the calibration inputs.</summary>
/// <param name="Name">The weight's name.</param>
/// <param name="OpType">The op that reads it.</param>
/// <param name="MagnitudeError">The error with the kept weights unchanged (plain magnitude pruning).</param>
/// <param name="ReconstructedError">The error after the re-fit.</param>
/// <param name="Vectors">Calibration vectors XᵀX was taken over.</param>
/// <param name="MaxAbsChange">The largest |w − ŵ| over the weight, pruned and re-fitted values alike.</param>
public sealed record ReconstructedLayer(string Name, string OpType, double MagnitudeError, double ReconstructedError, long Vectors, double MaxAbsChange)
{
    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Name} ({OpType}): output error {MagnitudeError:0.00%} -> {ReconstructedError:0.00%} over {Vectors} vectors");
}
