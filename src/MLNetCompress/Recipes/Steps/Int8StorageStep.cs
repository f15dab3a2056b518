using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"int8-storage"}</c>: float weights stored as int8 with scales, expanded at load
/// (<see cref="Int8WeightStoragePass"/>). Fields: those of <see cref="Int8WeightStorageOptions"/>.</summary>
public sealed record Int8StorageStep : RecipeStep<Int8WeightStorageOptions>
{
    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context) => [new Int8WeightStoragePass(Options)];
}
