using System.Reflection;
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
/// <remarks>
/// Bridge: ReconstructionPass keeps its <c>Geometry</c> record and <c>Collect</c> method private, so they are reached
/// by reflection here. Once they are internal (a static <c>Collect(work, geometry, feed, settings, ct)</c>), the two
/// members below become direct calls and the reflection goes.
/// </remarks>
internal sealed class LayerInputs
{
    private static readonly Type GeometryType = typeof(ReconstructionPass).GetNestedType("Geometry", BindingFlags.NonPublic)
        ?? throw new MissingMemberException(nameof(ReconstructionPass), "Geometry");

    private static readonly MethodInfo GeometryOf = GeometryType.GetMethod("Of", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)
        ?? throw new MissingMethodException(GeometryType.FullName, "Of");

    private static readonly MethodInfo CollectMethod = typeof(ReconstructionPass).GetMethod("Collect", BindingFlags.NonPublic | BindingFlags.Instance)
        ?? throw new MissingMethodException(nameof(ReconstructionPass), "Collect");

    private readonly object geometry;

    private LayerInputs(object geometry)
    {
        this.geometry = geometry;
        Inputs = Get<int>("Inputs");
        Rows = Get<int>("Rows");
        RowStride = Get<int>("RowStride");
        ColStride = Get<int>("ColStride");
    }

    /// <summary>Inputs per output row (the length of an input vector).</summary>
    public int Inputs { get; }

    /// <summary>Output rows.</summary>
    public int Rows { get; }

    /// <summary>Offset between consecutive rows' first values in the weight.</summary>
    public int RowStride { get; }

    /// <summary>Offset between consecutive values of one row.</summary>
    public int ColStride { get; }

    /// <summary>The layer of <paramref name="site"/>, or null with the reason it is not supported.</summary>
    public static LayerInputs? Of(ModelGraph graph, WeightSite site, out string? reason)
    {
        object?[] args = [graph, site, null];
        var g = Invoke(GeometryOf, null, args);
        reason = (string?)args[2];
        return g is null ? null : new LayerInputs(g);
    }

    /// <summary>Runs <paramref name="work"/> once over the calibration data and returns the statistics of the layer's input vectors.</summary>
    public RunningCovariance Collect(ModelGraph work, IDataFeed feed, CalibrationOptions settings, CancellationToken cancellationToken)
    {
        // Only Calibration and CalibrationSettings of the options are read by Collect; the pruning criterion is a placeholder.
        var pass = new ReconstructionPass(new ReconstructionOptions
        {
            Pruning = new PruningOptions { Sparsity = 0 },
            Calibration = feed,
            CalibrationSettings = settings,
        });
        return (RunningCovariance)Invoke(CollectMethod, pass, [work, geometry, cancellationToken])!;
    }

    private T Get<T>(string property) => (T)GeometryType.GetProperty(property)!.GetValue(geometry)!;

    private static object? Invoke(MethodInfo method, object? target, object?[] args)
    {
        try
        {
            return method.Invoke(target, args);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            // The caller sees the real error (a bad feed, cancellation), not the reflection wrapper.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
    }
}
