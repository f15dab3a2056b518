using MLNetCompress.LowRank;
using MLNetCompress.Onnx.Passes;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"lowrank", "targetParams":0.5, "dataAware":true}</c>: low-rank factorization (<see cref="LowRankPass"/>).
/// Fields: those of <see cref="LowRankOptions"/> except the calibration data, plus <see cref="DataAware"/>.</summary>
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
            Calibration = DataAware ? context.RequireCalibration() : null,
            CalibrationSettings = context.WithRuntime(Options.CalibrationSettings),
        };
        return [new LowRankPass(options)];
    }
}
