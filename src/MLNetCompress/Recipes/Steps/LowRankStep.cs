using MLNetCompress.LowRank;
using MLNetCompress.Onnx.Passes;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"lowrank", "targetParams":0.5, "dataAware":true}</c>: low-rank factorization (<see cref="LowRankPass"/>).
/// Fields: those of <see cref="LowRankOptions"/> except the calibration data, plus <see cref="DataAware"/>; <c>"minCosine":0.97</c>
/// searches the ranks on the recipe's calibration data (data-aware).</summary>
public sealed record LowRankStep : RecipeStep<LowRankOptions>
{
    /// <summary>Fit each layer's factors to its outputs on the calibration data (needs calibration data).</summary>
    public bool DataAware { get; init; }

    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = Options with
        {
            // The rank search measures the outputs on the calibration data, so it needs it as data-aware fitting does.
            Calibration = DataAware || Options.MinCosine is not null ? context.RequireCalibration() : null,
            CalibrationSettings = context.WithRuntime(Options.CalibrationSettings),
        };
        return [new LowRankPass(options)];
    }
}
