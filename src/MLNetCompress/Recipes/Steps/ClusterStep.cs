using MLNetCompress.Clustering;
using MLNetCompress.Onnx.Passes;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"cluster", "clusters":16}</c>: k-means weight sharing (<see cref="KMeansClusteringPass"/>).
/// Fields: those of <see cref="KMeansClusteringOptions"/>.</summary>
public sealed record ClusterStep : RecipeStep<KMeansClusteringOptions>
{
    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context) => [new KMeansClusteringPass(Options)];
}
