using System.Globalization;
using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Runtime;

namespace MLNetCompress.LowRank;

// The rank search of LowRankPass (LowRankOptions.MinCosine): measure each layer alone, choose greedily, check the whole.
public sealed partial class LowRankPass
{
    /// <summary>Budget rounds before the search gives up and splits nothing.</summary>
    private const int SearchRounds = 5;

    private LowRankPlan Search(ModelGraph graph, List<Candidate> candidates, List<string> skipped, PassContext context)
    {
        var feed = Options.Calibration!;
        double minCosine = Options.MinCosine!.Value;
        var settings = Options.CalibrationSettings;
        var log = context.Log ?? settings.Log;
        // The cosine is measured on data the factors were not fitted to: SearchData, or the calibration rows after the fitted ones.
        var searchFeed = Options.SearchData ?? feed;
        int skip = Options.SearchData is null ? settings.MaxRows : 0;
        var reference = RunOutputs(graph, searchFeed, settings, skip);

        // Every trial is fitted on the original model's statistics: one calibration run for all layers.
        context.Report(Name, "calibrate", 0, candidates.Count);
        var requests = candidates.Where(SupportsDataAware).SelectMany(Requests).Distinct().ToList();
        var stats = CalibrationCollector.CollectCrossCovariances(graph, graph, requests, feed, settings, context.Cancellation);
        var shapes = LayerTiming.InputShapes(graph, candidates.Select(c => c.Node.Input[0]).ToList(), settings.Runtime);

        var trials = new List<RankTrial>();
        var ratios = Options.SearchRankRatios.Distinct().OrderByDescending(r => r).ToList();
        for (int k = 0; k < candidates.Count; k++)
        {
            var c = candidates[k];
            context.Report(Name, "search", k, candidates.Count);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var ratio in ratios)
            {
                context.Cancellation.ThrowIfCancellationRequested();
                var layer = Factorize(c, stats, AtRatio(ratio), out _);
                // Ratios that round to a rank already tried, or splits no smaller than the weight, are not tried.
                if (layer is null || !seen.Add(string.Join("/", layer.Ranks))) continue;
                var copy = graph.Clone();
                Apply(copy, layer);
                double cosine = MeanCosine(reference, RunOutputs(copy, searchFeed, settings, skip));
                var timing = LayerTiming.Measure(graph, layer, shapes[c.Node.Input[0]], settings.Runtime, Options.SearchTimingSamples);
                var trial = new RankTrial(c.Weight, ratio, layer.RanksArray, timing.OriginalMs, timing.SplitMs, cosine, false);
                trials.Add(trial);
                log?.Invoke($"search trial: {trial}");
            }
        }
        context.Report(Name, "search", candidates.Count, candidates.Count);
        // The whole layer is timed in each of its trials: its fastest time over all of them is the steadiest.
        var whole = trials.GroupBy(t => t.Weight).ToDictionary(g => g.Key, g => g.Min(t => t.OriginalMs), StringComparer.Ordinal);
        trials = trials.Select(t => t with { OriginalMs = whole[t.Weight] }).ToList();

        double budget = 1 - minCosine;
        for (int round = 0; round < SearchRounds; round++)
        {
            var chosen = Choose(trials, budget);
            if (chosen.Count == 0) break;
            var picked = candidates.Where(c => chosen.ContainsKey(c.Weight)).ToList();
            var roundSkipped = new List<string>();
            var layers = FactorizeAll(graph, picked, c => AtRatio(chosen[c.Weight].RankRatio), roundSkipped, context);
            var work = graph.Clone();
            foreach (var layer in layers) Apply(work, layer);
            double cosine = MeanCosine(reference, RunOutputs(work, searchFeed, settings, skip));
            double predicted = chosen.Values.Sum(t => Damage(t));
            log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"search round {round + 1}: {layers.Count} splits, predicted cosine {1 - predicted:0.00000}, measured {cosine:0.00000} (need {minCosine})"));
            if (cosine >= minCosine)
            {
                skipped.AddRange(roundSkipped);
                foreach (var c in candidates.Where(c => !chosen.ContainsKey(c.Weight)))
                    skipped.Add($"{c.Weight} ({c.Node.OpType} '{GraphScope.NodeLabel(c.Node)}'): the rank search kept it whole (no rank saved time within the cosine budget).");
                var marked = trials.Select(t => chosen.TryGetValue(t.Weight, out var kept) && ReferenceEquals(kept, t) ? t with { Chosen = true } : t).ToList();
                return new LowRankPlan(layers, skipped, marked, cosine);
            }
            // Losses add up faster than predicted: shrink the budget by the miss, and at least by a third.
            budget *= Math.Min(2.0 / 3, (1 - minCosine) / Math.Max(1 - cosine, 1e-12));
        }
        foreach (var c in candidates)
            skipped.Add($"{c.Weight} ({c.Node.OpType} '{GraphScope.NodeLabel(c.Node)}'): the rank search found no set of splits that keeps output cosine {minCosine.ToString(CultureInfo.InvariantCulture)}.");
        return new LowRankPlan([], skipped, trials, null);
    }

    /// <summary>The options for one layer at one rank fraction (a search trial, or a fixed per-layer rank): as configured, the rank fixed.</summary>
    private LowRankOptions AtRatio(double ratio) =>
        Options with { MinCosine = null, Energy = null, TargetParams = null, Vbmf = false, LayerRankRatios = null, RankRatio = ratio };

    private static double Damage(RankTrial t) => Math.Max(0, 1 - t.MeanCosine);

    /// <summary>
    /// Greedy choice, at most one rank per layer: repeatedly take the step (a layer split, or moved to a lower rank) with
    /// the most milliseconds saved per unit of cosine lost, while the summed losses stay within <paramref name="budget"/>.
    /// Only splits that save time are considered.
    /// </summary>
    internal static Dictionary<string, RankTrial> Choose(IReadOnlyList<RankTrial> trials, double budget)
    {
        var chosen = new Dictionary<string, RankTrial>(StringComparer.Ordinal);
        double spent = 0;
        while (true)
        {
            RankTrial? best = null;
            double bestScore = double.NegativeInfinity, bestCost = 0;
            foreach (var t in trials)
            {
                if (!(t.SavedMs > 0)) continue;
                chosen.TryGetValue(t.Weight, out var current);
                double gain = t.SavedMs - (current?.SavedMs ?? 0);
                if (!(gain > 0)) continue;
                double cost = Damage(t) - (current is null ? 0 : Damage(current));
                if (spent + cost > budget) continue;
                // A step that costs nothing (or gains cosine) is taken first, the largest gain among those.
                double score = cost <= 1e-9 ? 1e12 + gain : gain / cost;
                if (score > bestScore)
                {
                    best = t;
                    bestScore = score;
                    bestCost = cost;
                }
            }
            if (best is null) return chosen;
            chosen[best.Weight] = best;
            spent += bestCost;
        }
    }

    /// <summary>The model's outputs on <see cref="LowRankOptions.SearchRows"/> rows after the first <paramref name="skip"/>, each output's rows concatenated.</summary>
    private Dictionary<string, (float[] Data, int RowLength)> RunOutputs(ModelGraph graph, IDataFeed feed, CalibrationOptions settings, int skip)
    {
        using var runner = ModelRunner.Load(graph.ToBytes(), settings.Runtime, settings.Log);
        var data = new Dictionary<string, List<float>>(StringComparer.Ordinal);
        var rowLength = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var batch in feed.Batches(settings.BatchSize, skip + Options.SearchRows))
        {
            // A batch that holds fitted rows is not measured on.
            if (batch.FirstRow < skip) continue;
            var outputs = runner.Run(batch);
            foreach (var o in outputs.Outputs)
            {
                if (!data.TryGetValue(o.Name, out var list)) data[o.Name] = list = [];
                list.AddRange(o.Data);
                rowLength[o.Name] = o.RowLength;
            }
        }
        if (data.Count == 0)
            throw new InvalidOperationException(skip == 0 ? $"the search data ({feed.Description}) gave no rows."
                : $"the calibration data ({feed.Description}) has no rows beyond the {skip} the factors are fitted on, so the search has nothing held out to measure on; give more data, fewer calibration rows, or separate search data.");
        return data.ToDictionary(kv => kv.Key, kv => (kv.Value.ToArray(), rowLength[kv.Key]), StringComparer.Ordinal);
    }

    /// <summary>The lowest, over the outputs, of the mean row cosine between the reference and the candidate.</summary>
    private static double MeanCosine(Dictionary<string, (float[] Data, int RowLength)> reference, Dictionary<string, (float[] Data, int RowLength)> candidate)
    {
        double worst = 1;
        foreach (var (name, (a, length)) in reference)
        {
            var b = candidate[name].Data;
            if (length == 0) continue;
            int rows = a.Length / length;
            double sum = 0;
            for (int r = 0; r < rows; r++) sum += OutputStats.Cosine(a.AsSpan(r * length, length), b.AsSpan(r * length, length));
            worst = Math.Min(worst, sum / Math.Max(rows, 1));
        }
        return worst;
    }
}
