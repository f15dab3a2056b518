using MLNetCompress.Clustering;
using MLNetCompress.Onnx.Passes;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"cluster", "clusters":16, "refine":true}</c>: k-means weight sharing (<see cref="KMeansClusteringPass"/>),
/// with <c>"refine":true</c> each codebook re-fitted by least squares on the runner's calibration data. Fields: those of
/// <see cref="KMeansClusteringOptions"/> except the calibration data.</summary>
public sealed record ClusterStep : RecipeStep<KMeansClusteringOptions>
{
    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!Options.Refine) return [new KMeansClusteringPass(Options)];
        var options = Options with
        {
            Calibration = context.RequireCalibration(),
            RefineSettings = context.WithRuntime(Options.RefineSettings),
        };
        return [new KMeansClusteringPass(options)];
    }
}
