using MLNetCompress.Onnx.Passes;
using MLNetCompress.Pruning;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"prune", "sparsity":0.5, "global":true}</c>: magnitude pruning (<see cref="MagnitudePruningPass"/>).
/// Fields: those of <see cref="PruningOptions"/> (<c>pattern</c> as <c>"2:4"</c>). Followed by a <c>reconstruct</c> step,
/// the two run as one <see cref="ReconstructionPass"/>, which re-fits the kept weights on calibration data.</summary>
public sealed record PruneStep : RecipeStep<PruningOptions>
{
    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        Options.Validate();
        // The reconstruct step that follows chooses the same mask and re-fits it: it runs the pruning itself.
        return context.Next is ReconstructStep ? [] : [new MagnitudePruningPass(Options)];
    }
}
