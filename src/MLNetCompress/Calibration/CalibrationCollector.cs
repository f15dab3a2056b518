using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Runtime;

namespace MLNetCompress.Calibration;

/// <summary>Which intermediate tensor to watch and along which axis its feature vectors lie.</summary>
/// <param name="Value">A value name of the main graph (a node output or a graph input).</param>
/// <param name="FeatureAxis">The feature axis: 1 for NCHW channels, -1 for the hidden size of [batch, seq, hidden].</param>
public sealed record CovarianceRequest(string Value, int FeatureAxis);

/// <summary>How calibration runs.</summary>
public sealed record CalibrationOptions
{
    /// <summary>Rows of the feed to run (at most).</summary>
    public int MaxRows { get; init; } = 256;

    /// <summary>Rows per batch.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>At most this many feature vectors are taken per row of each tensor (a 56×56 feature map has 3136);
    /// positions are subsampled evenly beyond it.</summary>
    public int MaxVectorsPerRow { get; init; } = 1024;

    /// <summary>Runtime of the calibration session.</summary>
    public RuntimeOptions Runtime { get; init; } = RuntimeOptions.Default;

    /// <summary>Receives one-line notes.</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>
/// Runs the float model in ONNX Runtime with the requested intermediate values appended to the graph's outputs
/// (ONNX Runtime fills in their types), and folds each batch into running statistics: memory is flat in the
/// number of samples. One session for the whole run. Reused by every pass that needs XᵀX of a layer's inputs
/// or outputs (data-aware low rank, pruning reconstruction, GPTQ).
/// </summary>
public static class CalibrationCollector
{
    /// <summary>Collects <c>Σx</c> and <c>Σx·xᵀ</c> of each requested value over the feed.</summary>
    /// <param name="graph">The model; it is not modified (a copy gets the extra outputs).</param>
    /// <param name="requests">The values to watch.</param>
    /// <param name="feed">Calibration data built against the model's inputs.</param>
    /// <param name="options">Rows, batch size, runtime.</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    /// <returns>The statistics by value name.</returns>
    /// <exception cref="InvalidOperationException">The feed gave no rows, or a value is not a main-graph value.</exception>
    public static IReadOnlyDictionary<string, RunningCovariance> CollectCovariances(ModelGraph graph, IReadOnlyList<CovarianceRequest> requests,
        IDataFeed feed, CalibrationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(requests);
        ArgumentNullException.ThrowIfNull(feed);
        options ??= new CalibrationOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxRows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1);
        var stats = new Dictionary<string, RunningCovariance>(StringComparer.Ordinal);
        if (requests.Count == 0) return stats;

        var names = requests.Select(r => r.Value).Distinct(StringComparer.Ordinal).ToList();
        using var runner = ModelRunner.Load(WithOutputs(graph, names), options.Runtime, options.Log, names);
        long rows = 0;
        foreach (var batch in feed.Batches(options.BatchSize, options.MaxRows))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var outputs = runner.Run(batch);
            foreach (var request in requests)
            {
                var t = outputs[request.Value];
                int rank = t.Shape.Count;
                int axis = request.FeatureAxis < 0 ? request.FeatureAxis + rank : request.FeatureAxis;
                if (axis < 0 || axis >= rank)
                    throw new InvalidOperationException($"'{request.Value}' has shape [{string.Join(",", t.Shape)}]; it has no axis {request.FeatureAxis}.");
                int dim = checked((int)t.Shape[axis]);
                if (!stats.TryGetValue(request.Value, out var s)) stats[request.Value] = s = new RunningCovariance(dim);
                long vectors = t.Data.Length / Math.Max(dim, 1);
                long perRow = Math.Max(1, vectors / Math.Max(batch.RowCount, 1));
                int stride = (int)Math.Max(1, perRow / Math.Max(1, options.MaxVectorsPerRow));
                s.AddTensor(t.Data, t.Shape, axis, stride);
            }
            rows += batch.RowCount;
        }
        if (rows == 0) throw new InvalidOperationException($"the calibration data ({feed.Description}) gave no rows.");
        return stats;
    }

    /// <summary>
    /// Runs a reference model and a working copy of it (e.g. partly compressed) on the same batches and collects,
    /// for each requested value present in both, the paired statistics of the reference's and the working model's
    /// vectors: what a layer needs to be fitted to the reference outputs from the inputs it receives now. One session
    /// per model for the whole run.
    /// </summary>
    /// <param name="reference">The model whose outputs are the target (not modified).</param>
    /// <param name="working">The model being compressed (not modified); it has the reference's inputs. Passing the
    /// reference itself runs it once and pairs each vector with itself.</param>
    /// <param name="requests">The values to watch (names present in both graphs).</param>
    /// <param name="feed">Calibration data built against the models' inputs.</param>
    /// <param name="options">Rows, batch size, runtime.</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    /// <exception cref="InvalidOperationException">The feed gave no rows, a value is missing, or the two disagree in shape.</exception>
    public static IReadOnlyDictionary<string, RunningCrossCovariance> CollectCrossCovariances(ModelGraph reference, ModelGraph working,
        IReadOnlyList<CovarianceRequest> requests, IDataFeed feed, CalibrationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(working);
        ArgumentNullException.ThrowIfNull(requests);
        ArgumentNullException.ThrowIfNull(feed);
        options ??= new CalibrationOptions();
        var stats = new Dictionary<string, RunningCrossCovariance>(StringComparer.Ordinal);
        if (requests.Count == 0) return stats;
        var names = requests.Select(r => r.Value).Distinct(StringComparer.Ordinal).ToList();
        // The same graph on both sides (no reference to compare with) runs once.
        bool same = ReferenceEquals(reference, working);
        using var a = ModelRunner.Load(WithOutputs(reference, names), options.Runtime, options.Log, names);
        using var b = same ? null : ModelRunner.Load(WithOutputs(working, names), options.Runtime, options.Log, names);
        long rows = 0;
        foreach (var batch in feed.Batches(options.BatchSize, options.MaxRows))
        {
            cancellationToken.ThrowIfCancellationRequested();
            // Output buffers are reused by the next run of the same runner, not by the other runner's run.
            var ra = a.Run(batch);
            var rb = b is null ? ra : b.Run(batch);
            foreach (var request in requests)
            {
                var ta = ra[request.Value];
                var tb = rb[request.Value];
                if (!ta.Shape.SequenceEqual(tb.Shape))
                    throw new InvalidOperationException($"'{request.Value}' is [{string.Join(",", ta.Shape)}] in the reference and [{string.Join(",", tb.Shape)}] in the working model.");
                int rank = ta.Shape.Count;
                int axis = request.FeatureAxis < 0 ? request.FeatureAxis + rank : request.FeatureAxis;
                if (axis < 0 || axis >= rank)
                    throw new InvalidOperationException($"'{request.Value}' has shape [{string.Join(",", ta.Shape)}]; it has no axis {request.FeatureAxis}.");
                int dim = checked((int)ta.Shape[axis]);
                if (!stats.TryGetValue(request.Value, out var s)) stats[request.Value] = s = new RunningCrossCovariance(dim);
                long perRow = Math.Max(1, ta.Data.Length / Math.Max(dim, 1) / Math.Max(batch.RowCount, 1));
                int stride = (int)Math.Max(1, perRow / Math.Max(1, options.MaxVectorsPerRow));
                s.AddTensors(ta.Data, tb.Data, ta.Shape, axis, stride);
            }
            rows += batch.RowCount;
        }
        if (rows == 0) throw new InvalidOperationException($"the calibration data ({feed.Description}) gave no rows.");
        return stats;
    }

    /// <summary>The serialized model with <paramref name="values"/> appended to the main graph's outputs.</summary>
    internal static byte[] WithOutputs(ModelGraph graph, IEnumerable<string> values)
    {
        var copy = graph.Clone();
        var g = copy.Main.Proto;
        var defined = new HashSet<string>(copy.Main.DefinedValues(), StringComparer.Ordinal);
        foreach (var v in values)
        {
            if (!defined.Contains(v))
                throw new InvalidOperationException($"'{v}' is not a value of the main graph; only main-graph values can be calibrated.");
            if (!copy.Main.IsGraphOutput(v)) g.Output.Add(new ValueInfoProto { Name = v });
        }
        return copy.ToBytes();
    }
}
