using System.Diagnostics;
using System.Globalization;
using MLNetCompress.Calibration;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.Qdq;

namespace MLNetCompress.Quantization.Budget;

/// <summary>
/// Static QDQ under an accuracy budget: measures each weighted layer's sensitivity (the metric's drop with that layer
/// alone quantized), then keeps the most sensitive layers in float until the drop is within the budget.
/// </summary>
/// <remarks>
/// <para>Calibration runs once, on the prepared float model, over every value any candidate could quantize; each
/// candidate reuses those statistics through <see cref="QdqOptions.CalibrationStatistics"/> and keeps layers in float
/// through <see cref="QdqOptions.ExcludeNodes"/>. Each candidate is one ONNX Runtime session over the eval data.</para>
/// <para>The search always ends with a model to write (<see cref="BudgetResult.Best"/>): within the budget, the one
/// with the most layers quantized; otherwise the one with the smallest drop, with a note saying the budget was not
/// met. Rebuild it from the original model with <see cref="QdqRecipe.Passes"/> and <see cref="BudgetResult.BestOptions"/>.</para>
/// </remarks>
public static class AccuracyBudgetSearch
{
    /// <summary>Searches; <paramref name="model"/> is not modified.</summary>
    /// <param name="model">The float model.</param>
    /// <param name="options">The static QDQ options (calibration data, types, the user's own exclusions).</param>
    /// <param name="budget">The eval data, metric, budget and time bound.</param>
    /// <param name="progress">Receives progress before each try.</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    /// <exception cref="InvalidOperationException">The model is already quantized, the eval data is empty or does not fit
    /// the metric, or a candidate does not run.</exception>
    public static BudgetResult Run(ModelGraph model, QdqOptions options, AccuracyBudgetOptions budget,
        IProgress<BudgetProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(budget);
        options.Validate();
        budget.Validate();
        if (QuantizedModelDetector.Describe(model) is { } already) throw new InvalidOperationException(already);
        var clock = Stopwatch.StartNew();
        var notes = new List<string>();

        // Prepare once (BatchNormalization folding, opset upgrade, ...): every candidate starts from this graph, and
        // QdqRecipe.Passes rebuilds exactly it from the original when the best candidate is written.
        progress?.Report(new BudgetProgress("prepare", 0, 1, "preparation passes"));
        var context = new PassContext { Cancellation = cancellationToken, Log = budget.Log };
        var recipe = QdqRecipe.Passes(model.OnnxOpset, options, notes);
        var prepared = model.Clone();
        PassManager.Run(prepared, recipe.Take(recipe.Count - 1), context);

        progress?.Report(new BudgetProgress("calibrate", 0, 1, "activation ranges of every candidate value"));
        var stats = ActivationRanges.Collect(prepared, CandidateValues(prepared, options), options.Calibration,
            options.CalibrationSettings, options.HistogramBins, cancellationToken);
        // Candidates are measured for accuracy; the speed check runs once, on the model that is written.
        var calibrated = options with { CalibrationStatistics = stats, KeepFloatWhereSlower = false };

        progress?.Report(new BudgetProgress("baseline", 0, 1, "the float model on the eval data"));
        var evaluator = new BudgetEvaluator(model.ToBytes(), budget, cancellationToken);
        var search = new Search(prepared, calibrated, budget, evaluator, clock, progress, cancellationToken);

        var all = search.Try(BudgetStep.All, [], "all", 0, 1)!;
        var layers = all.QuantizedLayers;
        var ranking = new List<LayerSensitivity>();
        if (!all.MeetsBudget && layers.Count > 0)
        {
            var types = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var n in prepared.Main.Nodes) types.TryAdd(GraphScope.NodeLabel(n), n.OpType);
            for (int i = 0; i < layers.Count && !search.OutOfTime; i++)
            {
                var alone = search.Try(BudgetStep.Sensitivity, layers.Where((_, j) => j != i).ToList(), "sensitivity", i, layers.Count);
                if (alone is not null) ranking.Add(new LayerSensitivity(layers[i], types.GetValueOrDefault(layers[i], "?"), alone.Drop));
            }
            // Most sensitive first; a stable sort keeps graph order among equals.
            ranking = ranking.OrderByDescending(s => double.IsNaN(s.Drop) ? double.PositiveInfinity : s.Drop).ToList();
            if (ranking.Count == layers.Count) SearchRanked(search, ranking.Select(s => s.Layer).ToList(), budget.Search, budget.Remedy);
        }

        var best = Choose(search.Candidates);
        if (search.OutOfTime)
            notes.Add($"the time budget ({budget.TimeBudget!.Value.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture)} s) ran out after " +
                      $"{search.Candidates.Count} tries; the best candidate so far is kept.");
        if (!best.MeetsBudget)
            notes.Add($"WARNING: no candidate tried is within the budget (max drop {budget.MaxDrop.ToString(CultureInfo.InvariantCulture)}); " +
                      $"the one with the smallest drop is kept ({best.Describe()}, drop {best.Drop.ToString("G4", CultureInfo.InvariantCulture)}).");
        bool uint8Best = best.Remedy == BudgetRemedy.Uint8Weights;
        var bestOptions = options with
        {
            ExcludeNodes = uint8Best ? options.ExcludeNodes : options.ExcludeNodes.Concat(best.Excluded).ToHashSet(StringComparer.Ordinal),
            Uint8WeightNodes = uint8Best ? options.Uint8WeightNodes.Concat(best.Excluded).ToHashSet(StringComparer.Ordinal) : options.Uint8WeightNodes,
            CalibrationStatistics = stats,
        };
        return new BudgetResult(evaluator.Metric, budget.MaxDrop, evaluator.BaselineMetric, evaluator.BaselineMedianMs, layers, ranking,
            search.Candidates, best, search.OutOfTime, bestOptions, notes, clock.Elapsed);
    }

    /// <summary>
    /// Every value a candidate could put a Q/DQ pair on: the computed inputs and the first output of each main-graph node
    /// of a quantized op type. Which of them a candidate uses depends on what it excludes (e.g. a Conv kept float moves
    /// the pair from after its Relu to before it), so all are collected in the one calibration run.
    /// </summary>
    internal static IReadOnlyList<string> CandidateValues(ModelGraph prepared, QdqOptions options)
    {
        var scope = prepared.Main;
        var values = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in scope.Nodes)
        {
            if (node.Domain is not ("" or "ai.onnx") || !options.Ops.Contains(node.OpType)) continue;
            foreach (var input in node.Input)
                if (input.Length > 0 && scope.ConstantValue(input) is null) values.Add(input);
            if (node.Output.Count > 0 && node.Output[0].Length > 0) values.Add(node.Output[0]);
        }
        return scope.Nodes.SelectMany(n => n.Input.Concat(n.Output)).Concat(scope.Proto.Input.Select(i => i.Name))
            .Where(values.Remove).ToList();
    }

    /// <summary>Keeps the k most sensitive layers float for growing k (greedy) or a binary-searched k.</summary>
    private static void SearchRanked(Search search, List<string> ranked, BudgetSearchStrategy strategy, BudgetRemedy remedy)
    {
        // k = all layers float is the float model: never a useful answer (all layers with uint8 weights is).
        int n = remedy == BudgetRemedy.Uint8Weights ? ranked.Count : ranked.Count - 1;
        if (strategy == BudgetSearchStrategy.Greedy)
        {
            for (int k = 1; k <= n && !search.OutOfTime; k++)
                if (search.Try(BudgetStep.Search, ranked.Take(k).ToList(), "search", k - 1, n) is { MeetsBudget: true }) return;
            return;
        }
        int lo = 1, hi = n, step = 0, total = (int)Math.Ceiling(Math.Log2(Math.Max(n, 1) + 1));
        while (lo <= hi && !search.OutOfTime)
        {
            int mid = (lo + hi) / 2;
            var c = search.Try(BudgetStep.Search, ranked.Take(mid).ToList(), "search", step++, Math.Max(total, step));
            if (c is null) return;
            if (c.MeetsBudget) hi = mid - 1;
            else lo = mid + 1;
        }
    }

    /// <summary>Within the budget: most layers quantized, then smallest drop. Otherwise: smallest drop among the
    /// candidates that quantize anything. One-layer sensitivity tries are measurements, not models to hand over (their
    /// layer runs unfused), so they are never chosen.</summary>
    private static BudgetCandidate Choose(IReadOnlyList<BudgetCandidate> tried)
    {
        static double Drop(BudgetCandidate c) => double.IsNaN(c.Drop) ? double.PositiveInfinity : c.Drop;
        var candidates = tried.Where(c => c.Step != BudgetStep.Sensitivity).ToList();
        var within = candidates.Where(c => c.MeetsBudget).ToList();
        if (within.Count > 0)
            return within.OrderByDescending(c => c.QuantizedLayers.Count).ThenBy(Drop).First();
        var some = candidates.Where(c => c.QuantizedLayers.Count > 0).ToList();
        return (some.Count > 0 ? some : candidates).OrderBy(Drop).First();
    }

    /// <summary>The state of one search: builds, runs and records candidates, each excluded set at most once.</summary>
    private sealed class Search(ModelGraph prepared, QdqOptions options, AccuracyBudgetOptions budget, BudgetEvaluator evaluator,
        Stopwatch clock, IProgress<BudgetProgress>? progress, CancellationToken cancellationToken)
    {
        private readonly Dictionary<string, BudgetCandidate> _tried = new(StringComparer.Ordinal);
        private readonly List<BudgetCandidate> _candidates = [];

        public IReadOnlyList<BudgetCandidate> Candidates => _candidates;

        public bool OutOfTime { get; private set; }

        /// <summary>Builds and measures the candidate that keeps <paramref name="excluded"/> float; null when the time
        /// budget is spent (checked before each try, never in the middle of one).</summary>
        public BudgetCandidate? Try(BudgetStep step, IReadOnlyList<string> excluded, string phase, int done, int total)
        {
            string key = string.Join("\n", excluded.Order(StringComparer.Ordinal));
            if (_tried.TryGetValue(key, out var seen)) return seen;
            // The first try (everything quantized) always runs, so there is always a model to write.
            if (_candidates.Count > 0 && budget.TimeBudget is { } limit && clock.Elapsed >= limit)
            {
                OutOfTime = true;
                return null;
            }
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new BudgetProgress(phase, done, total, step == BudgetStep.Sensitivity
                ? $"layer {done + 1} of {total}" : $"{excluded.Count} layers float"));

            var graph = prepared.Clone();
            // A layer alone is measured for its numbers only: its neighbours are float, so ONNX Runtime would not fuse
            // it, and the pass would otherwise leave it float rather than slower.
            // The remedy applies to the layers the search picks; a sensitivity try keeps every other layer float.
            bool uint8 = step == BudgetStep.Search && budget.Remedy == BudgetRemedy.Uint8Weights;
            var pass = new QdqQuantizationPass(options with
            {
                ExcludeNodes = uint8 ? options.ExcludeNodes : options.ExcludeNodes.Concat(excluded).ToHashSet(StringComparer.Ordinal),
                Uint8WeightNodes = uint8 ? options.Uint8WeightNodes.Concat(excluded).ToHashSet(StringComparer.Ordinal) : options.Uint8WeightNodes,
                KeepUnfusedLayers = step == BudgetStep.Sensitivity,
            });
            PassManager.Run(graph, [pass], new PassContext { Cancellation = cancellationToken, Log = budget.Log });
            var plan = pass.LastPlan!;
            var quantized = plan.NodeList.Where(n => plan.Rules[n].IsCompute).Select(GraphScope.NodeLabel).ToList();
            var bytes = graph.ToBytes();
            var (metric, ms) = evaluator.Evaluate(bytes, cancellationToken);
            double drop = evaluator.BaselineMetric - metric;
            // A small tolerance so that a drop equal to the budget in decimal is not refused for a rounding bit.
            bool meets = !double.IsNaN(drop) && drop <= budget.MaxDrop + 1e-9;
            var candidate = new BudgetCandidate(step, excluded, quantized, metric, drop, meets, bytes.LongLength, ms,
                evaluator.BaselineMedianMs > 0 ? ms / evaluator.BaselineMedianMs : double.NaN, uint8 ? BudgetRemedy.Uint8Weights : BudgetRemedy.KeepFloat);
            _tried[key] = candidate;
            _candidates.Add(candidate);
            return candidate;
        }
    }
}
