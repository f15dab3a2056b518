using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;

namespace MLNetCompress.Compression;

/// <summary>
/// The base of passes that change weights layer by layer: plan, rewrite, and report one
/// <see cref="LayerChange"/> per weight the plan touched.
/// </summary>
/// <typeparam name="TPlan">What the planning step decided.</typeparam>
public abstract class LayerReportingPass<TPlan> : GraphPass<TPlan>, ILayerReportingPass
{
    /// <inheritdoc />
    public PassResult Run(ModelGraph graph, PassContext context, ICollection<LayerChange> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        var plan = Plan(graph, context);
        var result = Rewrite(graph, plan, context);
        foreach (var change in LayerChanges(plan)) layers.Add(change);
        return result;
    }

    /// <summary>The rows the plan reports, one per weight it changes.</summary>
    protected abstract IEnumerable<LayerChange> LayerChanges(TPlan plan);
}
