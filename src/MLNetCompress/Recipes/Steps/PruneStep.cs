using MLNetCompress.Onnx.Passes;
using MLNetCompress.Pruning;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"prune", "sparsity":0.5, "allocation":"sensitivity"}</c>: magnitude pruning (<see cref="MagnitudePruningPass"/>).
/// Fields: those of <see cref="PruningOptions"/> (<c>pattern</c> as <c>"2:4"</c>; <c>allocation</c> as <c>uniform</c>,
/// <c>global</c> or <c>sensitivity</c>, with <c>"global":true</c> kept as a shorthand; <c>sensitivitySettings</c> as
/// <c>{"gridPoints":8, "maxSparsity":0.98, "maxRows":256}</c>). A sensitivity allocation measures the layers on the
/// recipe's calibration data. Followed by a <c>reconstruct</c> step, the two run as one <see cref="ReconstructionPass"/>,
/// which re-fits the kept weights on calibration data.</summary>
public sealed record PruneStep : RecipeStep<PruningOptions>
{
    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = Options.Allocation == SparsityAllocation.Sensitivity
            ? Options with
            {
                Calibration = Options.Calibration ?? context.RequireCalibration(),
                SensitivitySettings = Options.SensitivitySettings with { Runtime = context.Runtime },
            }
            : Options;
        options.Validate();
        // The reconstruct step that follows chooses the same mask and re-fits it: it runs the pruning itself.
        return context.Next is ReconstructStep ? [] : [new MagnitudePruningPass(options)];
    }
}
