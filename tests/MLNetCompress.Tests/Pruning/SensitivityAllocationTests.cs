using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Pruning;
using MLNetCompress.Recipes;
using MLNetCompress.Recipes.Steps;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using static MLNetCompress.Tests.Pruning.PruningChecks;

namespace MLNetCompress.Tests.Pruning;

public class SensitivityAllocationTests
{
    private const OnnxDataType F = OnnxDataType.Float;
    private const float QuietScale = 0.05f;

    /// <summary>y = x·W1 + 0.05·(x·W2): W1 and W2 hold values of the same spread, but an error in W2 reaches y 20× smaller.</summary>
    private static byte[] TwoBranches() => TestModels.Model().Input("x", F, "N", 64)
        .Initializer(TestTensors.Random("W1", [64, 64], 1))
        .Initializer(TestTensors.Random("W2", [64, 64], 2))
        .Initializer("s", [1], QuietScale)
        .Node("MatMul", ["x", "W1"], ["a"]).Node("MatMul", ["x", "W2"], ["b"])
        .Node("Mul", ["b", "s"], ["c"]).Node("Add", ["a", "c"], ["y"])
        .Output("y", F, "N", 64).ToBytes();

    /// <summary>The same model with W2 in a Constant node, which cannot be fed as an input: its candidates are rebuilt.</summary>
    private static byte[] TwoBranchesWithConstantNode() => TestModels.Model().Input("x", F, "N", 64)
        .Initializer(TestTensors.Random("W1", [64, 64], 1))
        .Constant("W2", TestTensors.Random("W2", [64, 64], 2))
        .Initializer("s", [1], QuietScale)
        .Node("MatMul", ["x", "W1"], ["a"]).Node("MatMul", ["x", "W2"], ["b"])
        .Node("Mul", ["b", "s"], ["c"]).Node("Add", ["a", "c"], ["y"])
        .Output("y", F, "N", 64).ToBytes();

    private static IDataFeed Feed(byte[] model, int rows = 64, int seed = 3)
    {
        using var runner = ModelRunner.Load(model);
        return new RandomFeed(runner.Inputs, rows, seed);
    }

    private static PruningOptions Sensitivity(byte[] model, double sparsity) => new()
    {
        Sparsity = sparsity,
        Allocation = SparsityAllocation.Sensitivity,
        MinElements = 0,
        Calibration = Feed(model),
        SensitivitySettings = new SensitivityOptions { GridPoints = 6, MaxRows = 64, BatchSize = 16 },
    };

    private static (byte[] Model, PruningPlan Plan) Prune(byte[] model, PruningOptions options)
    {
        var graph = ModelGraph.FromBytes(model);
        var pass = new MagnitudePruningPass(options);
        var plan = pass.Preview(graph);
        PassManager.Run(graph, [pass]);
        return (graph.ToBytes(), plan);
    }

    /// <summary>y of the two-branch model computed here in double, for the feed's rows.</summary>
    private static double[] Forward(float[] x, int rows, float[] w1, float[] w2)
    {
        var y = new double[rows * 64];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < 64; j++)
            {
                double a = 0, b = 0;
                for (int i = 0; i < 64; i++)
                {
                    a += (double)x[r * 64 + i] * w1[i * 64 + j];
                    b += (double)x[r * 64 + i] * w2[i * 64 + j];
                }
                y[r * 64 + j] = a + QuietScale * b;
            }
        return y;
    }

    private static double RelativeMse(double[] y, double[] reference) =>
        y.Select((v, i) => (v - reference[i]) * (v - reference[i])).Sum() / reference.Sum(v => v * v);

    /// <summary>The smallest summed damage over all integer splits of <paramref name="total"/>, by dynamic programming.</summary>
    private static double BruteForceOptimum(IReadOnlyList<SensitivityCurve> curves, long total)
    {
        var best = new double[total + 1];
        Array.Fill(best, double.PositiveInfinity);
        best[0] = 0;
        foreach (var c in curves)
        {
            var next = new double[total + 1];
            Array.Fill(next, double.PositiveInfinity);
            for (long used = 0; used <= total; used++)
                for (long z = 0; z <= c.Elements && used + z <= total; z++)
                    next[used + z] = Math.Min(next[used + z], best[used] + c.DamageAt(z));
            best = next;
        }
        return best[total];
    }

    [Fact]
    public void Allocate_HitsEveryTotalExactly_WithTheLeastSummedDamage_AsDynamicProgramming()
    {
        // Convex curves measured at every count: the hull greedy must equal the exact integer optimum.
        static SensitivityCurve Quadratic(string name, int n, double a, double b) =>
            new(name, n, Enumerable.Range(0, n + 1).Select(z => (long)z).ToArray(), Enumerable.Range(0, n + 1).Select(z => a * z * z + b * z).ToArray());
        var curves = new[] { Quadratic("a", 12, 0.5, 0.1), Quadratic("b", 20, 0.05, 1.0), Quadratic("c", 7, 2.0, 0) };
        for (long total = 0; total <= 39; total++)
        {
            var counts = SensitivityAllocation.Allocate(curves, total);
            Assert.Equal(total, counts.Sum());
            for (int l = 0; l < curves.Length; l++) Assert.InRange(counts[l], 0, curves[l].Elements);
            double damage = counts.Select((z, l) => curves[l].DamageAt(z)).Sum();
            Assert.Equal(BruteForceOptimum(curves, total), damage, 9);
        }
    }

    [Fact]
    public void Allocate_InterpolatesSparseGrids_IsDeterministic_AndRefusesAnUnreachableTotal()
    {
        // Equal sizes; "loud" hurts 10× more at every point, so it is pruned only after "quiet" is full.
        long[] zeros = [0, 500, 800, 950];
        var quiet = new SensitivityCurve("quiet", 1000, zeros, [0, 0.01, 0.05, 0.2]);
        var loud = new SensitivityCurve("loud", 1000, zeros, [0, 0.1, 0.5, 2.0]);
        var counts = SensitivityAllocation.Allocate([loud, quiet], 1000);
        Assert.Equal(1000, counts.Sum());
        Assert.True(counts[0] < counts[1], $"loud {counts[0]} vs quiet {counts[1]}");
        Assert.Equal(counts, SensitivityAllocation.Allocate([loud, quiet], 1000));
        // A non-monotone measurement reads as flat, never as pruning that repairs.
        var bumpy = new SensitivityCurve("bumpy", 1000, zeros, [0, 0.3, 0.1, 0.4]);
        Assert.Equal(0.3, bumpy.DamageAt(800), 12);
        Assert.Equal(0.35, bumpy.DamageAt(875), 12);
        Assert.Throws<ArgumentOutOfRangeException>(() => SensitivityAllocation.Allocate([loud, quiet], 1901));
    }

    [Fact]
    public void Pass_GivesTheQuietLayerMoreZeros_HitsTheTotal_AndBeatsUniformAndGlobalOnTheOutputs()
    {
        var model = TwoBranches();
        var (pruned, plan) = Prune(model, Sensitivity(model, 0.5));
        Assert.Equal(Math.Round(0.5 * 2 * 64 * 64), plan.Zeros);
        var w1 = plan.Layers.Single(l => l.Name == "W1");
        var w2 = plan.Layers.Single(l => l.Name == "W2");
        Assert.True(w1.Sparsity < 0.2 && w2.Sparsity > 0.8, $"W1 {w1.Sparsity:P1}, W2 {w2.Sparsity:P1}");
        Assert.NotNull(plan.Sensitivity);
        Assert.Equal(2, plan.Sensitivity.Curves.Count);
        Assert.Equal(2 * 6, plan.Sensitivity.Candidates);
        Assert.All(plan.Layers, l => Assert.NotNull(l.Sensitivity));
        Assert.Contains("sensitivity", w1.ToString(), StringComparison.Ordinal);

        // Each layer keeps exactly its smallest magnitudes, as plain magnitude pruning to its own count would.
        var before = Weights(model);
        var after = Weights(pruned);
        var (uniform, _) = Prune(model, new PruningOptions { Sparsity = 0.5, MinElements = 0 });
        var (global, _) = Prune(model, new PruningOptions { Sparsity = 0.5, Allocation = SparsityAllocation.Global, MinElements = 0 });
        foreach (var layer in plan.Layers)
        {
            var alone = new PruningOptions { LayerSparsity = new Dictionary<string, double> { [layer.Name] = layer.Sparsity }, MinElements = 0 };
            Assert.Equal(Weights(Prune(model, alone).Model)[layer.Name].Values, after[layer.Name].Values);
        }

        // Judged independently, on rows the allocation did not see: less output error than uniform and global.
        var x = Feed(model, 32, seed: 9).Batches(32, 32).Single().Inputs["x"].FloatData;
        double[] Y(byte[] m) => Forward(x, 32, Weights(m)["W1"].Values, Weights(m)["W2"].Values);
        var reference = Y(model);
        double bySensitivity = RelativeMse(Y(pruned), reference);
        Assert.True(bySensitivity < RelativeMse(Y(uniform), reference) / 4, $"sensitivity {bySensitivity} vs uniform {RelativeMse(Y(uniform), reference)}");
        Assert.True(bySensitivity < RelativeMse(Y(global), reference) / 4, $"sensitivity {bySensitivity} vs global {RelativeMse(Y(global), reference)}");
        Assert.Equal(before["s"].Values, after["s"].Values);
    }

    [Fact]
    public void MeasuredCurve_IsTheRelativeOutputMse_ComputedByHand_AndTheRunIsDeterministic()
    {
        var model = TwoBranches();
        var options = Sensitivity(model, 0.6);
        var (first, plan) = Prune(model, options);
        var (second, again) = Prune(model, options with { Calibration = Feed(model) });
        Assert.Equal(first, second);
        Assert.Equal(plan.Layers.Select(l => l.Zeros), again.Layers.Select(l => l.Zeros));

        var rows = Feed(model).Batches(64, 64).Single().Inputs["x"].FloatData;
        var weights = Weights(model);
        var reference = Forward(rows, 64, weights["W1"].Values, weights["W2"].Values);
        var curve = plan.Sensitivity!.Curves.Single(c => c.Name == "W1");
        Assert.Equal(0, curve.Damage[0]);
        Assert.Equal(0, curve.Zeros[0]);
        for (int p = 1; p < curve.Zeros.Count; p++)
        {
            var w1 = weights["W1"].Values.ToArray();
            var order = Enumerable.Range(0, w1.Length).OrderBy(i => MathF.Abs(w1[i])).ThenBy(i => i).Take((int)curve.Zeros[p]).ToList();
            foreach (int i in order) w1[i] = 0;
            double expected = RelativeMse(Forward(rows, 64, w1, weights["W2"].Values), reference);
            Assert.InRange(curve.Damage[p], expected * 0.999, expected * 1.001);
        }
        // The grid: log-spaced density down to 1 − MaxSparsity.
        Assert.Equal(Math.Round(options.SensitivitySettings.MaxSparsity * 4096), curve.Zeros[^1]);
    }

    [Fact]
    public void WeightInAConstantNode_IsRebuiltPerCandidate_AndMeasuresTheSameCurve()
    {
        var fedModel = TwoBranches();
        var rebuiltModel = TwoBranchesWithConstantNode();
        var (_, fed) = Prune(fedModel, Sensitivity(fedModel, 0.5));
        var (pruned, rebuilt) = Prune(rebuiltModel, Sensitivity(rebuiltModel, 0.5));
        // W1 is an initializer (one session for its 6 candidates), W2 a Constant node (one session per candidate).
        Assert.Equal((2, 12), (fed.Sensitivity!.Sessions, fed.Sensitivity.Candidates));
        Assert.Equal((1 + 6, 12), (rebuilt.Sensitivity!.Sessions, rebuilt.Sensitivity.Candidates));
        for (int l = 0; l < 2; l++)
        {
            var a = fed.Sensitivity.Curves[l];
            var b = rebuilt.Sensitivity.Curves[l];
            Assert.Equal(a.Zeros, b.Zeros);
            for (int p = 0; p < a.Damage.Count; p++) Assert.Equal(a.Damage[p], b.Damage[p], a.Damage[p] * 1e-4 + 1e-12);
        }
        Assert.Equal(fed.Layers.Select(l => l.Zeros), rebuilt.Layers.Select(l => l.Zeros));
        Assert.Equal(fed.Zeros, rebuilt.Zeros);
        Assert.NotNull(pruned);
    }

    [Fact]
    public void WithAPattern_CurvesStartAtThePatternsZeros_AndEveryGroupKeepsTheRule()
    {
        var model = TwoBranches();
        var (pruned, plan) = Prune(model, Sensitivity(model, 0.7) with { Pattern = new NMPattern(2, 4) });
        Assert.Equal(Math.Round(0.7 * 2 * 64 * 64), plan.Zeros);
        foreach (var curve in plan.Sensitivity!.Curves)
        {
            Assert.Equal(64 * 64 / 2, curve.Zeros[0]);
            Assert.True(curve.Damage[0] > 0); // the pattern alone was measured, not assumed harmless
        }
        // MatMul B is [K, N]: groups of 4 run down each column; at most 2 of each survive.
        foreach (var name in new[] { "W1", "W2" })
        {
            var w = Weights(pruned)[name].Values;
            for (int col = 0; col < 64; col++)
                for (int g = 0; g < 64; g += 4)
                    Assert.True(Enumerable.Range(g, 4).Count(r => w[r * 64 + col] != 0) <= 2);
        }
    }

    private sealed class Recorder : IProgress<PassProgress>
    {
        public List<PassProgress> Reports { get; } = [];

        public void Report(PassProgress value) => Reports.Add(value);
    }

    [Fact]
    public void Measurement_ReportsProgressPerCandidate_AndLogsEachCurve()
    {
        var model = TwoBranches();
        var recorder = new Recorder();
        var log = new List<string>();
        new MagnitudePruningPass(Sensitivity(model, 0.5)).Preview(ModelGraph.FromBytes(model), new PassContext { Progress = recorder, Log = log.Add });
        var steps = recorder.Reports.Where(r => r.Step == "sensitivity").ToList();
        Assert.Equal(Enumerable.Range(0, 13), steps.Select(r => r.Done));
        Assert.All(steps, r => Assert.Equal(12, r.Total));
        Assert.Equal(2, log.Count(l => l.StartsWith("sensitivity of W", StringComparison.Ordinal)));
    }

    [Fact]
    public void SensitivityWithoutCalibration_IsAOneLineErrorNamingTheFix()
    {
        var e = Assert.Throws<ArgumentException>(() => new MagnitudePruningPass(new PruningOptions { Sparsity = 0.5, Allocation = SparsityAllocation.Sensitivity }));
        Assert.Contains("calibration", e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Throws<ArgumentException>(() => new MagnitudePruningPass(new PruningOptions { Allocation = SparsityAllocation.Sensitivity, StdRate = 1 }));
        var model = TwoBranches();
        Assert.Throws<ArgumentException>(() => new MagnitudePruningPass(Sensitivity(model, 0.99)));
    }

    [Fact]
    public void Global_StaysTheShorthandOfTheGlobalAllocation()
    {
        Assert.Equal(SparsityAllocation.Global, new PruningOptions { Global = true }.Allocation);
        Assert.True(new PruningOptions { Allocation = SparsityAllocation.Global }.Global);
        Assert.Equal(SparsityAllocation.Sensitivity, new PruningOptions { Allocation = SparsityAllocation.Sensitivity, Global = false }.Allocation);
    }

    [Fact]
    public void Reconstruction_MeasuresSensitivityOnItsOwnCalibrationData()
    {
        var model = TwoBranches();
        var feed = Feed(model);
        var pruning = Sensitivity(model, 0.5) with { Calibration = null };
        var graph = ModelGraph.FromBytes(model);
        var plan = new ReconstructionPass(new ReconstructionOptions { Pruning = pruning, Calibration = feed }).Preview(graph);
        Assert.NotNull(plan.Pruning.Sensitivity);
        Assert.Equal(Math.Round(0.5 * 2 * 64 * 64), plan.Pruning.Zeros);
        Assert.True(plan.Pruning.Layers.Single(l => l.Name == "W1").Sparsity < plan.Pruning.Layers.Single(l => l.Name == "W2").Sparsity);
    }

    [Fact]
    public void RecipePruneStep_ReadsTheAllocationAndItsSettings_AndRoundTrips()
    {
        var recipe = Recipe.Parse("""{"steps":[{"step":"prune","sparsity":0.8,"allocation":"sensitivity","sensitivitySettings":{"gridPoints":4,"maxRows":128}}]}""");
        var options = ((PruneStep)recipe.Steps[0]).Options;
        Assert.Equal(SparsityAllocation.Sensitivity, options.Allocation);
        Assert.Equal((4, 128), (options.SensitivitySettings.GridPoints, options.SensitivitySettings.MaxRows));
        Assert.True(recipe.NeedsCalibration);
        var json = recipe.ToJson();
        Assert.Contains("\"allocation\": \"sensitivity\"", json, StringComparison.Ordinal);
        Assert.Equal(json, Recipe.Parse(json).ToJson());
    }
}
