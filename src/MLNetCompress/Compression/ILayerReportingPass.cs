using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;

namespace MLNetCompress.Compression;

/// <summary>
/// A pass that also says, weight by weight, what it changed. <see cref="ModelCompressor"/> collects these
/// rows into <see cref="CompressionResult.Layers"/>; run as a plain <see cref="IGraphPass"/> it just edits.
/// </summary>
public interface ILayerReportingPass : IGraphPass
{
    /// <summary>Rewrites the graph like <see cref="IGraphPass.Run"/> and adds a row per changed weight to <paramref name="layers"/>.</summary>
    PassResult Run(ModelGraph graph, PassContext context, ICollection<LayerChange> layers);
}
