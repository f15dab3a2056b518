using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Pruning;
using MLNetCompress.Testing;
using static MLNetCompress.Tests.Pruning.PruningChecks;

namespace MLNetCompress.Tests.Pruning;

public class MagnitudePruningPassTests
{
    private const OnnxDataType F = OnnxDataType.Float;

    private static byte[] Mlp() => TestModels.Mlp(inFeatures: 64, hidden: 128, outFeatures: 32).ToBytes();

    private static (ModelGraph Graph, PruningPlan Plan) Prune(byte[] model, PruningOptions options)
    {
        var graph = ModelGraph.FromBytes(model);
        var pass = new MagnitudePruningPass(options);
        var plan = pass.Preview(graph);
        PassManager.Run(graph, [pass]);
        return (graph, plan);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.9)]
    public void PerLayerSparsity_ZeroesExactlyTheSmallestMagnitudes_AsTheSortReference(double sparsity)
    {
        var model = Mlp();
        var (graph, plan) = Prune(model, new PruningOptions { Sparsity = sparsity, MinElements = 0 });
        var before = Weights(model);
        var after = Weights(graph.ToBytes());
        Assert.Equal(["W1", "W2"], plan.Layers.Select(l => l.Name));
        foreach (var name in new[] { "W1", "W2" })
        {
            var w = before[name].Values;
            Assert.Equal(ReferencePrune(w, sparsity), after[name].Values);
            var layer = plan.Layers.Single(l => l.Name == name);
            Assert.Equal(Math.Round(sparsity * w.Length), layer.Zeros);
            Assert.InRange(layer.Sparsity, sparsity - 0.001, sparsity + 0.001);
        }
        Assert.Equal(before["b1"].Values, after["b1"].Values); // biases are not weights
    }

    [Fact]
    public void StdRate_ThresholdIsRateTimesTheLayerStd_AndEveryValueAtOrBelowItIsZero()
    {
        var model = Mlp();
        var (graph, plan) = Prune(model, new PruningOptions { StdRate = 0.7, MinElements = 0 });
        var after = Weights(graph.ToBytes());
        foreach (var (name, (_, w)) in Weights(model).Where(kv => kv.Key.StartsWith('W')))
        {
            double mean = w.Average(v => (double)v);
            double std = Math.Sqrt(w.Sum(v => (v - mean) * (v - mean)) / w.Length);
            var layer = plan.Layers.Single(l => l.Name == name);
            Assert.Equal(0.7 * std, layer.Threshold, 1e-6);
            for (int i = 0; i < w.Length; i++)
                Assert.Equal(Math.Abs(w[i]) <= layer.Threshold ? 0f : w[i], after[name].Values[i]);
            // Uniform values in [-1, 1): std ≈ 0.577, so about 40% fall under 0.7·std.
            Assert.InRange(layer.Sparsity, 0.35, 0.46);
        }
    }

    [Fact]
    public void Global_OneThresholdOverAllLayers_HitsTheTotalExactly()
    {
        // W2 gets values 4x smaller than W1: one threshold must take far more of it.
        var model = TestModels.Model().Input("x", F, 4, 64)
            .Initializer(TestTensors.Random("W1", [64, 128], 1))
            .Initializer(TestTensors.Float("W2", [128, 32], TestTensors.RandomValues(128 * 32, 2).Select(v => v / 4).ToArray()))
            .Node("MatMul", ["x", "W1"], ["h"]).Node("MatMul", ["h", "W2"], ["y"])
            .Output("y", F, 4, 32).ToBytes();
        var (graph, plan) = Prune(model, new PruningOptions { Sparsity = 0.6, Global = true, MinElements = 0 });
        var before = Weights(model);
        var after = Weights(graph.ToBytes());
        Assert.Equal(Math.Round(0.6 * (64 * 128 + 128 * 32)), plan.Zeros);
        float maxPruned = 0, minKept = float.MaxValue;
        foreach (var name in new[] { "W1", "W2" })
            for (int i = 0; i < before[name].Values.Length; i++)
            {
                float v = Math.Abs(before[name].Values[i]);
                if (after[name].Values[i] == 0) maxPruned = Math.Max(maxPruned, v);
                else { minKept = Math.Min(minKept, v); Assert.Equal(before[name].Values[i], after[name].Values[i]); }
            }
        Assert.True(maxPruned <= minKept, $"a pruned |w| {maxPruned} exceeds a kept one {minKept}");
        Assert.Equal(plan.GlobalThreshold, maxPruned);
        Assert.True(plan.Layers.Single(l => l.Name == "W2").Sparsity > 0.95);
        Assert.True(plan.Layers.Single(l => l.Name == "W1").Sparsity < 0.5);
    }

    public static TheoryData<string> PatternCases => ["Conv", "GemmTransB", "MatMul"];

    [Theory]
    [MemberData(nameof(PatternCases))]
    public void Pattern24_HoldsInEveryGroupAlongTheReductionAxis_AndOrtAgreesWithTheReference(string op)
    {
        // (model, weight dims, reduction axis, input shape)
        var (builder, dims, axis, shape) = op switch
        {
            "Conv" => (TestModels.Model().Input("x", F, 1, 16, 6, 6).Initializer(TestTensors.Random("W", [8, 16, 3, 3], 1))
                .Node("Conv", ["x", "W"], ["y"]).Output("y", F, 1, 8, 4, 4), new long[] { 8, 16, 3, 3 }, 1, new long[] { 1, 16, 6, 6 }),
            "GemmTransB" => (TestModels.Model().Input("x", F, 3, 32).Initializer(TestTensors.Random("W", [24, 32], 1))
                .Node("Gemm", ["x", "W"], ["y"], Attr.Int("transB", 1)).Output("y", F, 3, 24), [24, 32], 1, [3, 32]),
            _ => (TestModels.Model().Input("x", F, 3, 32).Initializer(TestTensors.Random("W", [32, 24], 1))
                .Node("MatMul", ["x", "W"], ["y"]).Output("y", F, 3, 24), [32, 24], 0, [3, 32]),
        };
        var model = builder.ToBytes();
        var (graph, plan) = Prune(model, new PruningOptions { Pattern = new NMPattern(2, 4), MinElements = 0 });
        var w = Weights(model)["W"].Values;
        var pruned = Weights(graph.ToBytes())["W"].Values;
        Assert.Equal(0.5, plan.Layers.Single().Sparsity);

        // Independent reference: walk every group of 4 along the reduction axis by coordinates and keep the 2 largest.
        long inner = dims.Skip(axis + 1).Aggregate(1L, (a, b) => a * b), outer = dims.Take(axis).Aggregate(1L, (a, b) => a * b);
        var reference = new float[w.Length];
        for (long o = 0; o < outer; o++)
            for (long g = 0; g < dims[axis]; g += 4)
                for (long i = 0; i < inner; i++)
                {
                    var group = Enumerable.Range(0, 4).Select(j => (int)(((o * dims[axis]) + g + j) * inner + i)).ToArray();
                    Assert.True(group.Count(x => pruned[x] != 0) <= 2, $"group at {group[0]} has more than 2 non-zeros");
                    foreach (int x in group.OrderByDescending(x => Math.Abs(w[x])).Take(2)) reference[x] = w[x];
                }
        Assert.Equal(reference, pruned);
        AssertSameOrtOutputs(WithWeights(model, new Dictionary<string, float[]> { ["W"] = reference }), graph.ToBytes(), "x", shape);
    }

    [Fact]
    public void PatternPlusSparsity_PrunesFurtherWithinThePattern()
    {
        var (graph, plan) = Prune(Mlp(), new PruningOptions { Pattern = new NMPattern(2, 4), Sparsity = 0.75, MinElements = 0 });
        var w1 = Weights(graph.ToBytes())["W1"].Values; // [64, 128]: groups run down the 64 rows
        Assert.Equal(0.75, plan.Layers[0].Sparsity, 3);
        for (int g = 0; g < 64; g += 4)
            for (int c = 0; c < 128; c++)
                Assert.True(Enumerable.Range(0, 4).Count(j => w1[(g + j) * 128 + c] != 0) <= 2);
    }

    [Fact]
    public void Exclusions_MinElements_AndUnfitPatterns_AreSkippedWithReasons()
    {
        var model = TestModels.Model().Input("x", F, 2, 64)
            .Initializer(TestTensors.Random("W1", [64, 128], 1))
            .Initializer(TestTensors.Random("W2", [128, 30], 2))
            .Initializer(TestTensors.Random("W3", [30, 6], 3))
            .Initializer(TestTensors.Random("W4", [6, 2], 4))
            .Node("MatMul", ["x", "W1"], ["a"], name: "fc1").Node("MatMul", ["a", "W2"], ["b"], name: "fc2")
            .Node("MatMul", ["b", "W3"], ["c"], name: "fc3").Node("MatMul", ["c", "W4"], ["y"], name: "fc4")
            .Output("y", F, 2, 2).ToBytes();
        var graph = ModelGraph.FromBytes(model);
        var plan = new MagnitudePruningPass(new PruningOptions
        {
            Pattern = new NMPattern(2, 4),
            MinElements = 100,
            Exclude = new HashSet<string> { "fc1" },
        }).Preview(graph);
        Assert.Equal(["W2"], plan.Layers.Select(l => l.Name));
        Assert.Contains(plan.Skipped, s => s.StartsWith("W1 (MatMul in main): excluded", StringComparison.Ordinal));
        Assert.Contains(plan.Skipped, s => s.StartsWith("W3", StringComparison.Ordinal) && s.Contains("not a multiple of 4", StringComparison.Ordinal));
        Assert.Contains(plan.Skipped, s => s.StartsWith("W4", StringComparison.Ordinal) && s.Contains("below MinElements", StringComparison.Ordinal));
    }

    [Fact]
    public void BadOptions_AreRefused()
    {
        Assert.Throws<ArgumentException>(() => new MagnitudePruningPass(new PruningOptions()));
        Assert.Throws<ArgumentException>(() => new MagnitudePruningPass(new PruningOptions { Sparsity = 1 }));
        Assert.Throws<ArgumentException>(() => new MagnitudePruningPass(new PruningOptions { Sparsity = 0.5, StdRate = 1 }));
        Assert.Throws<ArgumentException>(() => new MagnitudePruningPass(new PruningOptions { StdRate = 1, Global = true }));
        Assert.Throws<FormatException>(() => NMPattern.Parse("4:2"));
        Assert.Equal(new NMPattern(2, 4), NMPattern.Parse("2:4"));
    }

    [Fact]
    public void CnnSample_OrtOutputsEqualTheModelPrunedByTheReference()
    {
        var model = File.ReadAllBytes(RealModels.CnnSample);
        var (graph, plan) = Prune(model, new PruningOptions { Sparsity = 0.75 });
        // The 288-value first conv is under MinElements; the other three are pruned.
        Assert.Equal(["features.3.weight", "classifier.1.weight", "classifier.4.weight"], plan.Layers.Select(l => l.Name));
        var reference = plan.Layers.ToDictionary(l => l.Name, l => ReferencePrune(Weights(model)[l.Name].Values, 0.75));
        AssertSameOrtOutputs(WithWeights(model, reference), graph.ToBytes(), "input", [4, 1, 28, 28]);
    }
}
