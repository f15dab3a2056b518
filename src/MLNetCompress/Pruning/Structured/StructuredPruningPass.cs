using System.Globalization;
using System.Numerics.Tensors;
using MLNetCompress.Calibration;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Pruning.Structured;

/// <summary>
/// Structured pruning: whole output channels of Conv layers are removed from the graph, so the model does less work.
/// Each group of tied channels (one Conv, or every Conv a chain of residual Adds joins) loses the same fraction of its
/// lowest-ranked channels (<see cref="ChannelCriterion"/>), and every constant that follows them is cut: the Convs'
/// filters and biases, BatchNormalization parameters, per-channel constants of elementwise ops, depthwise Convs, the
/// next Convs' input channels, and the rows of a Gemm/MatMul after a Flatten (a channel is a run of H·W features
/// there); Concat places the channels at their offset. A group whose channels reach a graph output or an op the pass
/// cannot follow is left whole, with the reason in the result.
/// </summary>
/// <remarks>
/// With <see cref="StructuredPruningOptions.Reconstruct"/>, each removed channel is replaced, at every consumer that
/// reads the group one channel per index, by its least-squares estimate from the kept channels plus a constant
/// (from the channel covariance on calibration data): x_r ≈ Σ_k a_rk x_k + b_r. That is folded into the consumer's
/// weights (w_k += Σ_r a_rk w_r) and bias (+= Σ_r b_r Σ w_r), the closed form of refitting the next layer over
/// combinations of its own kernels, as in channel-pruning reconstruction (He et al. 2017). The constant is exact away
/// from zero padding. Statistics come from one calibration run of the original model; with
/// <see cref="StructuredPruningOptions.Sequential"/>, each group's re-fit instead pairs the original model's consumer
/// inputs with those of the model already pruned up to that group, so it also corrects the earlier groups' errors.
/// </remarks>
public sealed class StructuredPruningPass : LayerReportingPass<StructuredPruningPlan>
{
    /// <summary>Creates the pass.</summary>
    /// <exception cref="ArgumentException">The options are inconsistent or out of range.</exception>
    public StructuredPruningPass(StructuredPruningOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
    }

    /// <summary>The options.</summary>
    public StructuredPruningOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "structured-pruning";

    /// <inheritdoc />
    protected override IEnumerable<LayerChange> LayerChanges(StructuredPruningPlan plan) =>
        plan.Tensors.Where(t => t.Change is not null).Select(t => t.Change!);

    /// <inheritdoc />
    protected override StructuredPruningPlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(context);
        var scope = graph.Main;
        var skipped = new List<string>();
        var notes = new List<string>();
        var active = new List<(ChannelGroup Group, int Keep)>();
        foreach (var g in ChannelGroupFinder.Find(graph))
        {
            if (g.SkipReason is not null) { skipped.Add($"{g.Label}: {g.SkipReason}."); continue; }
            var excluded = g.Sources.FirstOrDefault(s => Options.Exclude.Contains(s.Name) || Options.Exclude.Contains(s.Input[1]));
            if (excluded is not null) { skipped.Add($"{g.Label}: {GraphEdits.Label(excluded)} is excluded by name."); continue; }
            if (!Options.ResidualGroups && g.Sources.Count > 1) { skipped.Add($"{g.Label}: residual groups are not pruned (ResidualGroups is off)."); continue; }
            double fraction = g.Sources.Min(s => Options.FractionFor(s.Name, s.Input[1]));
            int keep = Options.KeptCount(g.Channels, fraction);
            if (keep >= g.Channels) { skipped.Add($"{g.Label}: keeps all {g.Channels} channels at fraction {fraction.ToString(CultureInfo.InvariantCulture)} (keep at least {Options.KeepAtLeast}, round to {Options.RoundTo})."); continue; }
            active.Add((g, keep));
        }

        var stats = Collect(graph, active.Select(a => a.Group).ToList(), context);
        var work = new Dictionary<string, TensorWork>(StringComparer.Ordinal);
        var biases = new Dictionary<NodeProto, float[]>(ReferenceEqualityComparer.Instance);
        var groups = new List<PrunedChannelGroup>();
        var changedValues = new List<string>();
        for (int k = 0; k < active.Count; k++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "plan", k, active.Count);
            var (g, keep) = active[k];
            int[] removed;
            if (Options.Criterion == ChannelCriterion.Reconstruction && GreedySelection(scope, g, g.Channels - keep, stats) is { } chosen)
                removed = chosen;
            else
            {
                var scores = Scores(scope, g, stats);
                removed = Enumerable.Range(0, g.Channels).OrderBy(c => scores[c]).ThenBy(c => c).Take(g.Channels - keep).Order().ToArray();
            }
            // Before this group's cuts: the working model must still have all of its channels.
            var paired = Options.Reconstruct && Options.Sequential ? CollectPaired(graph, g, groups, work, biases, changedValues, context) : null;
            foreach (var cut in g.Cuts)
            {
                var w = Work(scope, work, cut.Tensor, cut.Node);
                var set = w.Removed(cut.Axis);
                foreach (int c in removed) foreach (int i in cut.Map.Indices(c, cut.Hw)) set.Add(i);
                if (cut.IsWeight) w.IsWeight = true;
            }
            double? explained = null;
            if (Options.Reconstruct)
            {
                foreach (var sink in g.Sinks)
                {
                    var e = Reconstruct(scope, g, sink, removed, stats, paired?.GetValueOrDefault(sink.Value), work, biases, notes);
                    explained ??= e;
                }
            }
            changedValues.AddRange(g.Values.Keys);
            groups.Add(new PrunedChannelGroup(g.Sources.Select(s => s.Name).ToList(), g.Sinks.Select(s => s.Node.Name).ToList(),
                g.Channels, keep, removed, Options.Criterion, explained));
        }
        context.Report(Name, "plan", active.Count, active.Count);

        var (tensors, newBiases) = Finish(scope, work, biases, node => node);
        return new StructuredPruningPlan(groups, skipped, notes, tensors, changedValues, newBiases);
    }

    /// <summary>The cut constants and the new biases (on the nodes <paramref name="target"/> maps them to).</summary>
    private static (List<PlannedTensor> Tensors, List<PlannedBias> Biases) Finish(GraphScope scope, Dictionary<string, TensorWork> work,
        Dictionary<NodeProto, float[]> biases, Func<NodeProto, NodeProto> target)
    {
        var tensors = work.Values.Select(w => w.Finish()).ToList();
        var newBiases = new List<PlannedBias>();
        foreach (var (node, values) in biases)
        {
            // A new Conv bias follows the output channels its Conv loses as a source of another group.
            var cut = node.OpType == "Conv" && work.TryGetValue(node.Input[1], out var w) ? w.Removed(0) : [];
            var kept = values.Where((_, i) => !cut.Contains(i)).ToArray();
            var type = OnnxDataTypes.FromWire(GraphEdits.Constant(scope, node.Input[1])!.DataType);
            newBiases.Add(new PlannedBias(target(node), [kept.Length], kept, type));
        }
        return (tensors, newBiases);
    }

    /// <summary>
    /// Sequential reconstruction: the paired statistics of the group's consumer inputs in the original model (the
    /// target) and in the model with every group before it already pruned and re-fitted (what the consumers receive
    /// now), so this group's re-fit also absorbs the earlier groups' errors. Consumers reading only part of a value
    /// (a Concat) keep the one-shot statistics: that value is already cut in the working model.
    /// </summary>
    private IReadOnlyDictionary<string, RunningCrossCovariance> CollectPaired(ModelGraph graph, ChannelGroup g, List<PrunedChannelGroup> done,
        Dictionary<string, TensorWork> work, Dictionary<NodeProto, float[]> biases, List<string> changedValues, PassContext context)
    {
        var requests = g.Sinks.Where(s => s.Cut.Map is { Block: 1, Offset: 0 } m && m.Total == g.Channels)
            .Select(s => s.Value).Distinct(StringComparer.Ordinal).Select(v => new CovarianceRequest(v, 1)).ToList();
        if (requests.Count == 0) return new Dictionary<string, RunningCrossCovariance>(StringComparer.Ordinal);
        var working = graph;
        if (done.Count > 0)
        {
            working = graph.Clone();
            var (tensors, newBiases) = Finish(graph.Main, work, biases, node => working.Main.Producer(node.Output[0])!);
            Rewrite(working, new StructuredPruningPlan(done.ToList(), [], [], tensors, changedValues.ToList(), newBiases), context);
        }
        return CalibrationCollector.CollectCrossCovariances(graph, working, requests, Options.Calibration!, Options.CalibrationSettings, context.Cancellation);
    }

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, StructuredPruningPlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(context);
        var skipped = plan.Skipped.Concat(plan.Notes).ToList();
        if (plan.Groups.Count == 0) return PassResult.Unchanged(Name, skipped);
        var scope = graph.Main;
        foreach (var t in plan.Tensors) scope.ReplaceConstant(t.Name, t.Tensor);
        foreach (var b in plan.NewBiases) AddBias(graph, b);
        // A depthwise Conv has one group per channel: its group count follows its cut weight.
        foreach (var node in scope.Nodes)
            if (node.OpType == "Conv" && GraphEdits.Int(node, "group", 1) != 1 && plan.Tensors.FirstOrDefault(t => t.Name == node.Input[1]) is { } w)
                GraphEdits.SetInt(node, "group", w.Tensor.Dims[0]);
        // Declared shapes of the values whose channel count changed are stale now.
        foreach (var v in plan.ChangedValues) GraphEdits.DropValueInfo(scope, v);
        var changes = plan.Groups.Select(g => g.ToString()).ToList();
        return new PassResult(Name, true, changes, skipped);
    }

    private static void AddBias(ModelGraph graph, PlannedBias b)
    {
        var scope = graph.Main;
        var node = b.Node;
        var tensor = TensorData.FromFloats(graph.UniqueName(node.Output[0] + "_bias"), b.Dims, b.Values, b.Type);
        scope.AddInitializer(tensor);
        switch (node.OpType)
        {
            case "Conv":
            case "Gemm":
                int at = GraphEdits.IndexOf(scope, node);
                scope.RemoveNode(node);
                while (node.Input.Count < 2) node.Input.Add("");
                if (node.Input.Count > 2) node.Input[2] = tensor.Name; else node.Input.Add(tensor.Name);
                if (node.OpType == "Gemm") GraphEdits.SetFloat(node, "beta", 1f); // a Gemm without C may have any beta
                scope.AddNode(node, at);
                break;
            default: // MatMul: y = x·W, then an Add of the bias under the MatMul's old output name
                string output = node.Output[0];
                string product = graph.UniqueName(output + "_product");
                GraphEdits.RenameOutput(scope, node, 0, product);
                var add = GraphEdits.Node(graph, "Add", node.Name + "_bias", [product, tensor.Name], [output]);
                scope.AddNode(add, GraphEdits.IndexOf(scope, node) + 1);
                break;
        }
    }

    private Dictionary<string, ValueChannelStats> Collect(ModelGraph graph, List<ChannelGroup> groups, PassContext context)
    {
        if (Options.Calibration is null || groups.Count == 0) return new(StringComparer.Ordinal);
        var requests = new Dictionary<string, ChannelStatsRequest>(StringComparer.Ordinal);
        foreach (var g in groups)
            foreach (var (value, map, covariance) in WatchedValues(g))
            {
                bool cov = covariance && Options.Reconstruct;
                if (requests.TryGetValue(value, out var old)) cov |= old.Covariance;
                requests[value] = new ChannelStatsRequest(value, map.Total, map.Flattened, cov);
            }
        context.Report(Name, "calibrate", 0, 1);
        var stats = ChannelStatistics.Collect(graph, requests.Values.ToList(), Options.Calibration, Options.CalibrationSettings, context.Cancellation);
        context.Report(Name, "calibrate", 1, 1);
        return stats;
    }

    /// <summary>Where a group's channels are read: its consumers' inputs, or its sources' outputs when nothing reads them as input channels.</summary>
    private static IEnumerable<(string Value, ChannelMap Map, bool Covariance)> WatchedValues(ChannelGroup g)
    {
        if (g.Sinks.Count == 0)
        {
            foreach (var s in g.Sources) yield return (s.Output[0], g.Values[s.Output[0]], false);
            yield break;
        }
        foreach (var sink in g.Sinks) yield return (sink.Value, sink.Cut.Map, sink.Cut.Map.Block == 1);
    }

    /// <summary>One score per group channel; the lowest go. Each layer's scores are divided by their mean so layers weigh alike.</summary>
    private double[] Scores(GraphScope scope, ChannelGroup g, Dictionary<string, ValueChannelStats> stats)
    {
        var total = new double[g.Channels];
        if (Options.Criterion != ChannelCriterion.L1)
        {
            foreach (var (value, map, _) in WatchedValues(g).DistinctBy(w => w.Value))
            {
                var meanAbs = stats[value].MeanAbs();
                var s = new double[g.Channels];
                for (int c = 0; c < g.Channels; c++)
                    for (int j = 0; j < map.Block; j++) s[c] += meanAbs[map.Offset + c * map.Block + j];
                AddNormalized(total, s);
            }
            return total;
        }
        foreach (var source in g.Sources)
        {
            var cut = g.Cuts.First(c => ReferenceEquals(c.Node, source) && c.IsWeight);
            var t = GraphEdits.Constant(scope, cut.Tensor)!;
            var w = TensorData.ToFloatArray(t);
            // The weight as [outer, channels, inner]: a Conv's filters are rows, a Gemm's features rows or columns.
            long outer = 1, inner = 1;
            for (int d = 0; d < cut.Axis; d++) outer *= t.Dims[d];
            for (int d = cut.Axis + 1; d < t.Dims.Count; d++) inner *= t.Dims[d];
            var s = new double[g.Channels];
            for (long o = 0; o < outer; o++)
                for (int c = 0; c < g.Channels; c++)
                    s[c] += TensorPrimitives.SumOfMagnitudes(w.AsSpan((int)((o * g.Channels + c) * inner), (int)inner));
            if (BatchNormScale(scope, g, source) is { } scale)
                for (int c = 0; c < g.Channels; c++) s[c] *= Math.Abs(scale[c]);
            AddNormalized(total, s);
        }
        return total;
    }

    /// <summary>
    /// Optimal Brain Surgeon over a group's input channels at its consumers: the output error of a consumer with weight
    /// slices w_c (one per channel) is Σ_cc' Σ_cc'·⟨δ_c, δ_c'⟩ for weight changes δ, Σ the channel covariance. Removing
    /// channel c with the best compensation of the others costs ‖w_c‖² / P_cc (P = Σ⁻¹) and moves w_k by −w_c·P_kc/P_cc;
    /// P then loses row and column c. Channels go one at a time, cheapest first, costs summed over the consumers (each
    /// divided by its output energy). Null when no consumer has the statistics (then the activation scores decide).
    /// </summary>
    private int[]? GreedySelection(GraphScope scope, ChannelGroup g, int count, Dictionary<string, ValueChannelStats> stats)
    {
        int c = g.Channels;
        var sinks = new List<(double[][] W, double[] P, double[] Norm, double Scale)>();
        foreach (var sink in g.Sinks)
        {
            var map = sink.Cut.Map;
            if (map.Block != 1 || stats[sink.Value].Covariance is not { } cov) continue;
            var covariance = cov.Covariance();
            var p = new double[c * c];
            double diag = 0;
            for (int i = 0; i < c; i++)
            {
                for (int j = 0; j < c; j++) p[i * c + j] = covariance[(map.Offset + i) * cov.Dim + map.Offset + j];
                diag += p[i * c + i];
            }
            double lambda = Options.Damping * diag / c + 1e-12;
            for (int i = 0; i < c; i++) p[i * c + i] += lambda;
            var sigma = (double[])p.Clone();
            if (!Cholesky.Factor(p, c)) continue;
            var inverse = new double[c * c];
            for (int i = 0; i < c; i++)
            {
                var e = new double[c];
                e[i] = 1;
                Cholesky.Solve(p, c, e);
                for (int j = 0; j < c; j++) inverse[j * c + i] = e[j];
            }
            var w = ChannelSlices(scope, sink.Cut, c);
            // Output energy Σ_cc' Σ_cc'·⟨w_c, w_c'⟩ puts every consumer on the same footing.
            double energy = 0;
            for (int i = 0; i < c; i++)
                for (int j = 0; j < c; j++) energy += sigma[i * c + j] * TensorPrimitives.Dot(w[i], w[j]);
            var norm = w.Select(x => TensorPrimitives.Dot(x, x)).ToArray();
            sinks.Add((w, inverse, norm, energy > 0 ? 1 / energy : 1));
        }
        if (sinks.Count == 0) return null;

        var alive = Enumerable.Repeat(true, c).ToArray();
        var removed = new List<int>(count);
        for (int step = 0; step < count; step++)
        {
            int best = -1;
            double bestCost = double.PositiveInfinity;
            for (int k = 0; k < c; k++)
            {
                if (!alive[k]) continue;
                double cost = 0;
                foreach (var s in sinks) cost += s.Scale * s.Norm[k] / Math.Max(s.P[k * c + k], 1e-30);
                if (cost < bestCost) { bestCost = cost; best = k; }
            }
            alive[best] = false;
            removed.Add(best);
            foreach (var s in sinks)
            {
                double pcc = s.P[best * c + best];
                if (!(pcc > 0)) continue;
                for (int k = 0; k < c; k++)
                {
                    if (!alive[k]) continue;
                    double f = s.P[k * c + best] / pcc;
                    if (f == 0) continue;
                    TensorPrimitives.MultiplyAdd(s.W[best], -f, s.W[k], s.W[k]);
                    s.Norm[k] = TensorPrimitives.Dot(s.W[k], s.W[k]);
                }
                // P of the remaining channels: the Schur complement after dropping the removed one.
                var col = new double[c];
                for (int k = 0; k < c; k++) col[k] = s.P[k * c + best];
                for (int i = 0; i < c; i++)
                {
                    if (col[i] == 0) continue;
                    TensorPrimitives.MultiplyAdd(col, -col[i] / pcc, s.P.AsSpan(i * c, c), s.P.AsSpan(i * c, c));
                }
            }
        }
        return removed.Order().ToArray();
    }

    /// <summary>A consumer's weight entries of each group channel, as one vector per channel.</summary>
    private static double[][] ChannelSlices(GraphScope scope, TensorCut cut, int channels)
    {
        var t = GraphEdits.Constant(scope, cut.Tensor)!;
        var values = TensorData.ToFloatArray(t);
        long outer = 1, inner = 1;
        for (int d = 0; d < cut.Axis; d++) outer *= t.Dims[d];
        for (int d = cut.Axis + 1; d < t.Dims.Count; d++) inner *= t.Dims[d];
        long len = t.Dims[cut.Axis];
        int hw = cut.Hw;
        var result = new double[channels][];
        for (int ch = 0; ch < channels; ch++)
        {
            var v = result[ch] = new double[outer * hw * inner];
            int at = 0;
            for (long o = 0; o < outer; o++)
                for (int p = 0; p < hw; p++)
                {
                    long start = (o * len + (long)(cut.Map.Offset + ch) * hw + p) * inner;
                    for (long i = 0; i < inner; i++) v[at++] = values[start + i];
                }
        }
        return result;
    }

    private static void AddNormalized(double[] total, double[] s)
    {
        double mean = s.Average();
        for (int c = 0; c < s.Length; c++) total[c] += mean > 0 ? s[c] / mean : s[c];
    }

    /// <summary>γ/√(var+ε) of a BatchNormalization that alone reads the Conv's output: the filter's real scale.</summary>
    private static double[]? BatchNormScale(GraphScope scope, ChannelGroup g, NodeProto source)
    {
        var readers = scope.Consumers(source.Output[0]);
        if (readers.Count != 1 || readers[0] is not { OpType: "BatchNormalization" } bn) return null;
        var gamma = TensorData.ToFloatArray(GraphEdits.Constant(scope, bn.Input[1])!);
        var variance = TensorData.ToFloatArray(GraphEdits.Constant(scope, bn.Input[4])!);
        double eps = GraphEdits.Float(bn, "epsilon", 1e-5f);
        var s = new double[g.Channels];
        for (int c = 0; c < s.Length; c++) s[c] = gamma[c] / Math.Sqrt(Math.Max(variance[c] + eps, 1e-30));
        return s;
    }

    private static TensorWork Work(GraphScope scope, Dictionary<string, TensorWork> work, string name, NodeProto node)
    {
        if (!work.TryGetValue(name, out var w))
            work[name] = w = new TensorWork(name, GraphEdits.Constant(scope, name)!, node);
        return w;
    }

    /// <summary>
    /// Folds the least-squares estimate of the removed channels from the kept ones into one consumer; returns the share
    /// of the removed channels' variance explained, or null when this consumer cannot be re-fitted (noted). With
    /// <paramref name="paired"/> (sequential), every channel of the original model's input is estimated from the kept
    /// channels of the partly pruned model's input, and the kept weights are replaced by that fit: an asymmetric ridge
    /// regression onto the original consumer's input, which for a 1×1 consumer is the least-squares fit of its outputs.
    /// </summary>
    private double? Reconstruct(GraphScope scope, ChannelGroup g, ChannelSink sink, int[] removed, Dictionary<string, ValueChannelStats> stats,
        RunningCrossCovariance? paired, Dictionary<string, TensorWork> work, Dictionary<NodeProto, float[]> biases, List<string> notes)
    {
        var map = sink.Cut.Map;
        string label = GraphEdits.Label(sink.Node);
        if (map.Block != 1) { notes.Add($"{label}: not re-fitted; each channel of '{sink.Value}' spans {map.Block} entries."); return null; }
        var original = stats[sink.Value].Covariance!;
        int total = original.Dim;
        var originalCov = original.Covariance();
        // One-shot: target and input are the same statistics. Sequential: rows of the cross-covariance are the original
        // model's channels, columns the working model's.
        var refMean = paired?.ReferenceMean() ?? original.Mean();
        var inMean = paired?.Working.Mean() ?? refMean;
        var inCov = paired?.Working.Covariance() ?? originalCov;
        var cross = paired?.CrossCovariance() ?? originalCov;
        var keptSet = new HashSet<int>(Enumerable.Range(0, g.Channels).Except(removed));
        int[] kept = keptSet.Order().Select(c => map.Offset + c).ToArray();
        int[] gone = removed.Select(c => map.Offset + c).ToArray();
        int[] targets = paired is null ? gone : Enumerable.Range(0, g.Channels).Select(c => map.Offset + c).ToArray();

        // (Σ_SS + λI) A = Σ_ST, one factorization for every estimated channel.
        int n = kept.Length;
        var a = new double[n * n];
        double diag = 0;
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++) a[i * n + j] = inCov[kept[i] * total + kept[j]];
            diag += a[i * n + i];
        }
        double lambda = Options.Damping * diag / Math.Max(1, n) + 1e-12;
        for (int i = 0; i < n; i++) a[i * n + i] += lambda;
        if (!Cholesky.Factor(a, n)) { notes.Add($"{label}: not re-fitted; the kept channels' covariance is singular."); return null; }
        var coef = new double[targets.Length][];
        var offsets = new double[targets.Length];
        double varRemoved = 0, varLeft = 0;
        var goneSet = gone.ToHashSet();
        for (int r = 0; r < targets.Length; r++)
        {
            var rhs = new double[n];
            for (int i = 0; i < n; i++) rhs[i] = cross[targets[r] * total + kept[i]];
            var x = (double[])rhs.Clone();
            // The ridge pulls a kept channel's estimate toward itself (the unpruned mapping), not toward zero.
            if (Array.BinarySearch(kept, targets[r]) is int self and >= 0) x[self] += lambda;
            Cholesky.Solve(a, n, x);
            coef[r] = x;
            double predicted = 0;
            for (int i = 0; i < n; i++) predicted += x[i] * inMean[kept[i]];
            offsets[r] = refMean[targets[r]] - predicted;
            if (!goneSet.Contains(targets[r])) continue;
            double v = originalCov[targets[r] * total + targets[r]];
            varRemoved += v;
            varLeft += Math.Max(0, v - TensorPrimitives.Dot(x, rhs));
        }

        // The consumer's weight as [outer, Total·hw, inner]; an output unit is the outer index (Conv, Gemm with transB)
        // or the inner one (B as [K, N]).
        var w = Work(scope, work, sink.Cut.Tensor, sink.Node);
        int axis = sink.Cut.Axis, hw = sink.Cut.Hw;
        long outer = 1, inner = 1;
        for (int d = 0; d < axis; d++) outer *= w.Dims[d];
        for (int d = axis + 1; d < w.Dims.Length; d++) inner *= w.Dims[d];
        int len = (int)w.Dims[axis];
        int units = axis == 0 ? (int)inner : (int)outer;
        var delta = new double[units];
        var values = w.Values;
        // The estimated channels' slices are read before any kept slice is overwritten (sequential replaces them).
        var snapshot = new float[targets.Length * inner];
        for (long o = 0; o < outer; o++)
            for (int p = 0; p < hw; p++)
            {
                Span<float> Slice(int channel) => values.AsSpan((int)((o * len + channel * hw + p) * inner), (int)inner);
                for (int r = 0; r < targets.Length; r++) Slice(targets[r]).CopyTo(snapshot.AsSpan(r * (int)inner, (int)inner));
                if (paired is not null) foreach (int k in kept) Slice(k).Clear();
                for (int r = 0; r < targets.Length; r++)
                {
                    var src = snapshot.AsSpan(r * (int)inner, (int)inner);
                    for (int i = 0; i < n; i++)
                    {
                        float c = (float)coef[r][i];
                        if (c == 0) continue;
                        var dst = Slice(kept[i]);
                        TensorPrimitives.MultiplyAdd(src, c, dst, dst);
                    }
                    if (axis == 0) for (int u = 0; u < src.Length; u++) delta[u] += offsets[r] * src[u];
                    else delta[o] += offsets[r] * TensorPrimitives.Sum(src);
                }
            }
        if (!AddToBias(scope, sink, delta, work, biases, out string? why))
            notes.Add($"{label}: weights re-fitted, the constant term not: {why}");
        return varRemoved > 0 ? 1 - varLeft / varRemoved : 1;
    }

    private static bool AddToBias(GraphScope scope, ChannelSink sink, double[] delta, Dictionary<string, TensorWork> work,
        Dictionary<NodeProto, float[]> biases, out string? reason)
    {
        reason = null;
        var node = sink.Node;
        double factor = 1;
        if (sink.Kind == SinkKind.Gemm)
        {
            double alpha = GraphEdits.Float(node, "alpha", 1f), beta = GraphEdits.Float(node, "beta", 1f);
            bool hasC = node.Input.Count > 2 && node.Input[2].Length > 0;
            if (hasC && beta == 0) { reason = "the Gemm ignores its C (beta = 0)"; return false; }
            factor = hasC ? alpha / beta : alpha;
        }
        int biasInput = sink.Kind == SinkKind.MatMul ? -1 : 2;
        if (biasInput > 0 && node.Input.Count > biasInput && node.Input[biasInput].Length > 0)
        {
            string name = node.Input[biasInput];
            var t = GraphEdits.Constant(scope, name);
            if (t is null) { reason = $"its bias '{name}' is not a constant"; return false; }
            if (TensorData.ElementCount(t) != delta.Length) { reason = $"its bias '{name}' has shape [{string.Join(",", t.Dims)}], not one value per output"; return false; }
            if (scope.Consumers(name).Count != 1) { reason = $"its bias '{name}' is shared"; return false; }
            var b = Work(scope, work, name, node);
            for (int u = 0; u < delta.Length; u++) b.Values[u] += (float)(factor * delta[u]);
            return true;
        }
        if (!biases.TryGetValue(node, out var created)) biases[node] = created = new float[delta.Length];
        for (int u = 0; u < delta.Length; u++) created[u] += (float)(factor * delta[u]);
        return true;
    }

    /// <summary>A constant being edited: its full values (re-fits add into them), then the entries to drop per axis.</summary>
    private sealed class TensorWork(string name, TensorProto tensor, NodeProto node)
    {
        private readonly float[] original = TensorData.ToFloatArray(tensor);
        private readonly Dictionary<int, HashSet<int>> removed = [];

        public long[] Dims { get; } = tensor.Dims.ToArray();

        public float[] Values { get; } = TensorData.ToFloatArray(tensor);

        public bool IsWeight { get; set; }

        public HashSet<int> Removed(int axis)
        {
            if (!removed.TryGetValue(axis, out var set)) removed[axis] = set = [];
            return set;
        }

        /// <summary>The cut tensor, and for a weight its report row (the largest change counts a removed value as set to 0).</summary>
        public PlannedTensor Finish()
        {
            var type = OnnxDataTypes.FromWire(tensor.DataType);
            var dims = (long[])Dims.Clone();
            var keep = new bool[Values.Length];
            Array.Fill(keep, true);
            long stride = Values.Length;
            for (int d = 0; d < dims.Length; d++)
            {
                long step = stride / dims[d]; // entries per index of axis d
                stride = step;
                if (!removed.TryGetValue(d, out var set) || set.Count == 0) continue;
                for (long i = 0; i < keep.Length; i++)
                    if (set.Contains((int)(i / step % Dims[d]))) keep[i] = false;
                dims[d] -= set.Count;
            }
            var values = new float[dims.Aggregate(1L, (a, b) => a * b)];
            double maxChange = 0;
            for (int i = 0, k = 0; i < keep.Length; i++)
            {
                if (keep[i]) { values[k++] = Values[i]; maxChange = Math.Max(maxChange, Math.Abs((double)Values[i] - original[i])); }
                else maxChange = Math.Max(maxChange, Math.Abs((double)original[i]));
            }
            var t = TensorData.FromFloats(name, dims, values, type);
            LayerChange? change = null;
            if (IsWeight)
            {
                string typeName = OnnxDataTypes.Name(type);
                change = new LayerChange(name, node.OpType, "main", Dims, $"{typeName} [{string.Join(",", Dims)}]", $"{typeName} [{string.Join(",", dims)}]",
                    OnnxDataTypes.ByteCount(type, original.Length), OnnxDataTypes.ByteCount(type, values.Length), maxChange);
            }
            return new PlannedTensor(name, t, change);
        }
    }
}
