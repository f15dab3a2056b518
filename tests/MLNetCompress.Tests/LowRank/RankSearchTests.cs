using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.LowRank;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.LowRank;

public class RankSearchTests
{
    private static RankTrial Trial(string weight, double ratio, double savedMs, double cosine) =>
        new(weight, ratio, [1], 10, 10 - savedMs, cosine, false);

    [Fact]
    public void Choose_TakesTheMostTimePerCosineWithinTheBudget_AndMatchesExhaustiveSearch()
    {
        var trials = new[]
        {
            Trial("A", 0.5, 1.0, 0.99), Trial("A", 0.25, 2.0, 0.96),
            Trial("B", 0.5, 0.5, 0.999), Trial("B", 0.25, 1.5, 0.98),
            Trial("C", 0.5, -0.1, 1.0), // slower: never split
            Trial("D", 0.5, 0.3, 1.0),  // free: split first
        };
        const double budget = 0.035;
        var chosen = LowRankPass.Choose(trials, budget);

        Assert.Equal(["A", "B", "D"], chosen.Keys.Order());
        Assert.Equal(0.5, chosen["A"].RankRatio);
        Assert.Equal(0.25, chosen["B"].RankRatio);
        Assert.True(chosen.Values.Sum(t => 1 - t.MeanCosine) <= budget);

        // Exhaustively: each layer whole or at one of its ranks, the most time saved within the budget.
        var byLayer = trials.GroupBy(t => t.Weight).Select(g => g.Prepend(null).ToArray()).ToArray();
        double best = 0;
        void Walk(int i, double saved, double lost)
        {
            if (lost > budget) return;
            if (i == byLayer.Length) { best = Math.Max(best, saved); return; }
            foreach (var t in byLayer[i]) Walk(i + 1, saved + (t?.SavedMs ?? 0), lost + (t is null ? 0 : 1 - t.MeanCosine));
        }
        Walk(0, 0, 0);
        Assert.Equal(best, chosen.Values.Sum(t => t.SavedMs), 9);
    }

    [Fact]
    public void Choose_WithNoBudget_TakesOnlyFreeSplits()
    {
        var chosen = LowRankPass.Choose([Trial("A", 0.5, 1.0, 0.99), Trial("B", 0.5, 0.2, 1.0)], 0);
        Assert.Equal(["B"], chosen.Keys);
    }

    [Fact]
    public void Search_OptionsAreChecked()
    {
        var graph = TestModels.Mlp(inFeatures: 32, hidden: 48, outFeatures: 40).ToGraph();
        using var runner = ModelRunner.Load(graph.ToBytes());
        var feed = new RandomFeed(runner.Inputs, rows: 8);
        Assert.Contains("needs Calibration", Assert.Throws<ArgumentException>(() => new LowRankPass(new LowRankOptions { MinCosine = 0.9 })).Message);
        Assert.Contains("exactly one", Assert.Throws<ArgumentException>(() => new LowRankPass(new LowRankOptions { MinCosine = 0.9, RankRatio = 0.5, Calibration = feed })).Message);
        Assert.Contains("SearchRankRatios", Assert.Throws<ArgumentException>(() => new LowRankPass(new LowRankOptions { MinCosine = 0.9, Calibration = feed, SearchRankRatios = [0.5, 0] })).Message);
        Assert.Contains("MinCosine", Assert.Throws<ArgumentException>(() => new LowRankPass(new LowRankOptions { MinCosine = 1, Calibration = feed })).Message);
        Assert.Equal(RankCriterion.Search, new LowRankOptions { MinCosine = 0.9, Calibration = feed }.Criterion);
    }

    [Fact]
    public void LayerRankRatios_OverrideTheCriterionPerLayer()
    {
        var graph = TestModels.Mlp(inFeatures: 32, hidden: 48, outFeatures: 40).ToGraph();
        var options = new LowRankOptions { RankRatio = 0.5, MinElements = 0, LayerRankRatios = new Dictionary<string, double> { ["W1"] = 0.25 } };
        var plan = new LowRankPass(options).Preview(graph);
        // W1 is 32×48 (full rank 32), W2 48×40 (full rank 40).
        Assert.Equal([8, 20], plan.Layers.Select(l => l.Ranks[0]));
        Assert.Contains("must be in (0, 1]", Assert.Throws<ArgumentException>(() =>
            new LowRankPass(options with { LayerRankRatios = new Dictionary<string, double> { ["W1"] = 1.5 } })).Message);
    }

    [Fact]
    public void Search_OnTheCnnSample_MeasuresEachTrialAsASingleSplit_AndKeepsTheCosineItPromises()
    {
        string model = RealModels.CnnSample;
        using var original = ModelRunner.Load(model);
        var calibration = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:train", original.Inputs);
        var settings = new CalibrationOptions { MaxRows = 64, BatchSize = 16 };
        var options = new LowRankOptions
        {
            MinCosine = 0.995, Calibration = calibration, CalibrationSettings = settings,
            SearchRankRatios = [0.25, 0.25], SearchRows = 16, SearchTimingSamples = 5,
        };
        var graph = ModelGraph.Load(model);
        var pass = new LowRankPass(options);
        PassManager.Run(graph, [pass]);
        var plan = pass.LastPlan!;

        // conv2 (64×288) and fc1 (256×3136) are eligible: one trial each (a repeated ratio is tried once).
        Assert.Equal(2, plan.Trials.Count);
        Assert.Equal(2, plan.Trials.Select(t => t.Weight).Distinct().Count());
        Assert.All(plan.Trials, t => Assert.True(t.OriginalMs > 0 && t.SplitMs > 0));

        // Each trial's cosine is what the model gives with that split alone, fitted the same way, evaluated here on the
        // 16 rows after the 64 fitted ones.
        foreach (var trial in plan.Trials)
        {
            var single = ModelGraph.Load(model);
            var alone = new LowRankPass(options with { MinCosine = null, RankRatio = trial.RankRatio, Weights = new HashSet<string> { trial.Weight } });
            PassManager.Run(single, [alone]);
            Assert.Equal(trial.Ranks, alone.LastPlan!.Layers.Single().Ranks);
            Assert.Equal(MeanCosine(model, single.ToBytes(), calibration, 64, 16), trial.MeanCosine, 1e-6);
        }

        // The chosen splits are marked, one per layer, and the written model keeps the promised cosine on the search rows.
        Assert.Equal(plan.Layers.Count, plan.Trials.Count(t => t.Chosen));
        Assert.All(plan.Layers, l => Assert.Contains(plan.Trials, t => t.Chosen && t.Weight == l.Weight && t.Ranks.SequenceEqual(l.Ranks)));
        if (plan.Layers.Count > 0)
        {
            Assert.True(plan.SearchCosine >= 0.995, $"search cosine {plan.SearchCosine}");
            Assert.Equal(MeanCosine(model, graph.ToBytes(), calibration, 64, 16), plan.SearchCosine!.Value, 1e-6);
        }
        else
        {
            Assert.Null(plan.SearchCosine);
            Assert.Contains(plan.Skipped, s => s.Contains("rank search", StringComparison.Ordinal));
        }
    }

    /// <summary>Mean row cosine of the two models' first output on <paramref name="rows"/> rows after the first <paramref name="skip"/>.</summary>
    private static double MeanCosine(string reference, byte[] candidate, IDataFeed feed, int skip, int rows)
    {
        using var a = ModelRunner.Load(reference);
        using var b = ModelRunner.Load(candidate);
        double sum = 0;
        int n = 0;
        foreach (var batch in feed.Batches(16, skip + rows).Where(b => b.FirstRow >= skip))
        {
            var x = a.Run(batch).Outputs[0].Data.ToArray();
            var y = b.Run(batch).Outputs[0];
            int length = x.Length / batch.RowCount;
            for (int r = 0; r < batch.RowCount; r++, n++)
            {
                double dot = 0, nx = 0, ny = 0;
                for (int i = r * length; i < (r + 1) * length; i++)
                {
                    dot += (double)x[i] * y.Data[i];
                    nx += (double)x[i] * x[i];
                    ny += (double)y.Data[i] * y.Data[i];
                }
                sum += dot / Math.Sqrt(nx * ny);
            }
        }
        return sum / n;
    }
}
