using MLNetCompress.Onnx.Passes;
using MLNetCompress.Pruning;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"sparse-storage","format":"auto"}</c>: mostly-zero tensors stored as sparse initializers (<c>"coo"</c>, the
/// default), as a 1-bit mask plus the non-zero values that ONNX Runtime expands at load (<c>"bitmask"</c>, opset 11), or per
/// tensor the smaller (<c>"auto"</c>) (<see cref="SparseStoragePass"/>). Fields: those of <see cref="SparseStorageOptions"/>.</summary>
public sealed record SparseStorageStep : RecipeStep<SparseStorageOptions>
{
    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context) => [new SparseStoragePass(Options)];
}
