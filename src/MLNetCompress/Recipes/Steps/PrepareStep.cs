using MLNetCompress.Onnx.Passes;
using MLNetCompress.Preparation;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"prepare"}</c>: Identity/Dropout removal, constant folding and BatchNormalization folding
/// (<see cref="PreparationPasses.Default"/>), after an opset upgrade when <see cref="Opset"/> is above the model's.</summary>
public sealed record PrepareStep : RecipeStep
{
    /// <summary>Upgrade the model to at least this ai.onnx opset first; null leaves the opset alone.</summary>
    public int? Opset { get; init; }

    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var passes = new List<IGraphPass>();
        if (Opset is int target && target > context.ModelOpset)
        {
            passes.Add(new OpsetUpgradePass(new OpsetUpgradeOptions { TargetOpset = target }));
            context.Notes.Add($"opset upgraded from {context.ModelOpset} to {target} (prepare).");
        }
        else if (Opset is int t && t < OpsetUpgradeOptions.MinTargetOpset)
            throw new ArgumentException($"Opset is {t}; give {OpsetUpgradeOptions.MinTargetOpset} or more, or leave it out.", nameof(Opset));
        passes.AddRange(PreparationPasses.Default());
        return passes;
    }
}
