using MLNetCompress.Onnx.Passes;
using MLNetCompress.Pruning;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"sparse-storage"}</c>: mostly-zero weights stored as sparse initializers (<see cref="SparseStoragePass"/>).
/// Fields: those of <see cref="SparseStorageOptions"/>.</summary>
public sealed record SparseStorageStep : RecipeStep<SparseStorageOptions>
{
    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context) => [new SparseStoragePass(Options)];
}
