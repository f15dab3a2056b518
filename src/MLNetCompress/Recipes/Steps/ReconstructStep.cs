using MLNetCompress.Onnx.Passes;
using MLNetCompress.Pruning;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"reconstruct", "damping":0.01, "calibrationSettings":{"maxRows":256}}</c>, right after a
/// <c>prune</c> step: prunes with that step's options, then re-fits each layer's kept weights by least squares on its real
/// inputs from the calibration data (<see cref="ReconstructionPass"/>). Fields: those of <see cref="ReconstructionOptions"/>
/// except the pruning options (the prune step's) and the calibration data.</summary>
public sealed record ReconstructStep : RecipeStep<ReconstructionOptions>
{
    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.Previous is not PruneStep prune)
            throw new RecipeException(context.Index, Name,
                "reconstruct re-fits the weights a prune step zeroes; put it right after a {\"step\":\"prune\", ...} step");
        var options = Options with
        {
            Pruning = prune.Options,
            Calibration = context.RequireCalibration(),
            CalibrationSettings = context.WithRuntime(Options.CalibrationSettings),
        };
        return [new ReconstructionPass(options)];
    }
}
