using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Pruning;

namespace MLNetCompress.Clustering;

/// <summary>
/// A weight's layer as pruning reconstruction sees it (main-graph Gemm with transA = 0, rank-2 MatMul, 2-D Conv with
/// one group): which value feeds it, how its values map to output rows, and E[x·xᵀ] of its input vectors (im2col
/// patches for Conv) on calibration data. The geometry and the collection are <see cref="ReconstructionPass"/>'s own,
/// not a second copy.
/// </summary>
internal sealed class LayerInputs
{
    private readonly ReconstructionPass.Geometry geometry;

    private LayerInputs(ReconstructionPass.Geometry geometry) => this.geometry = geometry;

    /// <summary>Inputs per output row (the length of an input vector).</summary>
    public int Inputs => geometry.Inputs;

    /// <summary>Output rows.</summary>
    public int Rows => geometry.Rows;

    /// <summary>Offset between consecutive rows' first values in the weight.</summary>
    public int RowStride => geometry.RowStride;

    /// <summary>Offset between consecutive values of one row.</summary>
    public int ColStride => geometry.ColStride;

    /// <summary>The layer of <paramref name="site"/>, or null with the reason it is not supported.</summary>
    public static LayerInputs? Of(ModelGraph graph, WeightSite site, out string? reason) =>
        ReconstructionPass.Geometry.Of(graph, site, out reason) is { } g ? new LayerInputs(g) : null;

    /// <summary>Runs <paramref name="work"/> once over the calibration data and returns the statistics of the layer's input vectors.</summary>
    public RunningCovariance Collect(ModelGraph work, IDataFeed feed, CalibrationOptions settings, CancellationToken cancellationToken) =>
        ReconstructionPass.Collect(work, geometry, feed, settings, cancellationToken);
}
