using MLNetCompress.Onnx.Passes;
using MLNetCompress.Pruning.Structured;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"prune-structured", "fraction":0.25, "criterion":"l1"}</c>: whole output channels of Conv layers
/// removed from the graph, and every constant after them cut (<see cref="StructuredPruningPass"/>). The
/// <c>"activation"</c> criterion and <c>"reconstruct":true</c> use the runner's calibration data. Fields: those of
/// <see cref="StructuredPruningOptions"/> except the calibration data.</summary>
public sealed record PruneStructuredStep : RecipeStep<StructuredPruningOptions>
{
    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        // Only ask for data when it is read: an L1 ranking without reconstruction needs none.
        bool needsData = Options.Criterion == ChannelCriterion.Activation || Options.Reconstruct;
        var options = Options with
        {
            Calibration = needsData ? context.RequireCalibration() : null,
            CalibrationSettings = context.WithRuntime(Options.CalibrationSettings),
        };
        return [new StructuredPruningPass(options)];
    }
}
