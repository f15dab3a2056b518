using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Quantization.Budget;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Xunit.Abstractions;

namespace MLNetCompress.Tests.Quantization.Budget;

/// <summary>The accuracy-budget search: finds the layer made sensitive on purpose, keeps it float, calibrates once,
/// stops on its time budget, and on the CNN sample writes a model whose accuracy drop, measured independently, holds.</summary>
public class AccuracyBudgetSearchTests(ITestOutputHelper output)
{
    /// <summary>
    /// x[N,16] → gemm1(32) → Relu → gemm2(32) → Relu → gemm3(10). gemm1's row and bias for hidden unit 5 are zero, so
    /// that unit is always 0; gemm2 reads it with weight 1000 in every output channel. In float that weight never
    /// matters, but it sets every channel's int8 scale to 1000/127 ≈ 7.9, and gemm2's other weights (|w| &lt; 1) all
    /// round to 0: gemm2 alone is ruined by quantization while gemm1 and gemm3 quantize well.
    /// </summary>
    private static ModelGraph SensitiveMlp()
    {
        var w1 = TestTensors.RandomValues(32 * 16, 1);
        Array.Clear(w1, 5 * 16, 16);
        var b1 = TestTensors.RandomValues(32, 2);
        b1[5] = 0;
        var w2 = TestTensors.RandomValues(32 * 32, 3);
        for (int k = 0; k < 32; k++) w2[k * 32 + 5] = 1000; // [out, in] with transB: input unit 5 of every output
        return TestModels.Model(13)
            .Input("x", OnnxDataType.Float, "batch", 16)
            .Initializer(TestTensors.Float("W1", [32, 16], w1))
            .Initializer(TestTensors.Float("B1", [32], b1))
            .Initializer(TestTensors.Float("W2", [32, 32], w2))
            .Initializer(TestTensors.Random("B2", [32], 4))
            .Initializer(TestTensors.Random("W3", [10, 32], 5))
            .Initializer(TestTensors.Random("B3", [10], 6))
            .Node("Gemm", ["x", "W1", "B1"], ["h1"], "gemm1", "", Attr.Int("transB", 1))
            .Node("Relu", ["h1"], ["r1"], name: "relu1")
            .Node("Gemm", ["r1", "W2", "B2"], ["h2"], "gemm2", "", Attr.Int("transB", 1))
            .Node("Relu", ["h2"], ["r2"], name: "relu2")
            .Node("Gemm", ["r2", "W3", "B3"], ["y"], "gemm3", "", Attr.Int("transB", 1))
            .Output("y", OnnxDataType.Float, "batch", 10)
            .ToGraph();
    }

    private static IDataFeed Feed(ModelGraph graph, int rows, int seed)
    {
        using var runner = ModelRunner.Load(graph.ToBytes());
        return new RandomFeed(runner.Inputs, rows, seed);
    }

    [Theory]
    [InlineData(BudgetSearchStrategy.Greedy)]
    [InlineData(BudgetSearchStrategy.Binary)]
    [Trait("Category", "Int8Kernels")] // its numbers come from ONNX Runtime's integer kernels: CI runs it again without VNNI
    public void SensitiveLayer_IsRankedFirst_AndKeptFloat_WithOneCalibrationRun(BudgetSearchStrategy strategy)
    {
        var graph = SensitiveMlp();
        var before = graph.ToBytes();
        var calibration = new CountingFeed(Feed(graph, 64, 1));
        var options = new QdqOptions { Calibration = calibration, KeepFloatWhereSlower = false };
        var budget = new AccuracyBudgetOptions { Eval = Feed(graph, 64, 2), MaxDrop = 0.002, Metric = BudgetMetric.Cosine, Search = strategy, TimingRuns = 0 };
        var progress = new List<BudgetProgress>();
        var result = AccuracyBudgetSearch.Run(graph, options, budget, new SyncProgress<BudgetProgress>(progress.Add));
        foreach (var c in result.Candidates)
            output.WriteLine($"{c.Step,-11} {c.Describe(),-40} cos {c.Metric:F5} drop {c.Drop:F5} {(c.MeetsBudget ? "ok" : "")}");

        Assert.Equal(before, graph.ToBytes()); // the input graph is not touched
        Assert.Equal(1, calibration.Enumerations); // one calibration run serves every candidate
        Assert.Equal(new[] { "gemm1", "gemm2", "gemm3" }, result.Layers);
        Assert.Equal(BudgetMetric.Cosine, result.Metric);
        Assert.Equal(1.0, result.BaselineMetric);

        // Everything quantized misses the budget; each layer alone was measured, and gemm2 is by far the worst.
        Assert.False(result.Candidates[0].MeetsBudget);
        Assert.Equal(3, result.Sensitivity.Count);
        Assert.Equal("gemm2", result.Sensitivity[0].Layer);
        Assert.Equal("Gemm", result.Sensitivity[0].OpType);
        Assert.True(result.Sensitivity[0].Drop > 0.05, $"gemm2 alone: drop {result.Sensitivity[0].Drop}");
        Assert.All(result.Sensitivity.Skip(1), s => Assert.True(s.Drop < 0.002, $"{s.Layer}: drop {s.Drop}"));
        Assert.All(result.Candidates.Where(c => c.Step == BudgetStep.Sensitivity), c => Assert.Single(c.QuantizedLayers));

        // The written choice keeps gemm2 in float, within the budget. gemm1 goes float with it: a float gemm2 whose
        // output is quantized must read float values (see the test below), so gemm1 would end without a
        // QuantizeLinear and not fuse; gemm3 stays quantized.
        Assert.True(result.BudgetMet);
        Assert.Equal(new[] { "gemm2" }, result.Best.Excluded);
        Assert.Equal(new[] { "gemm3" }, result.Best.QuantizedLayers);
        Assert.Contains("gemm2", result.BestOptions.ExcludeNodes);
        Assert.NotNull(result.BestOptions.CalibrationStatistics);
        Assert.False(result.StoppedByTime);
        Assert.Contains(progress, p => p.Phase == "sensitivity");

        // Rebuilding the best from the original reproduces its metric (the same graph, the same statistics).
        var rebuilt = graph.Clone();
        Onnx.Passes.PassManager.Run(rebuilt, QdqRecipe.Passes(rebuilt.OnnxOpset, result.BestOptions));
        Assert.Equal(1, calibration.Enumerations);
        var report = ModelComparer.Compare(before, rebuilt.ToBytes(), Feed(graph, 64, 2), new EvalOptions { WarmupRuns = 0, MinLatencySamples = 1 });
        Assert.Equal(result.Best.Metric, report.Outputs[0].MeanCosine, 5);
        Assert.Contains(rebuilt.Main.Nodes, n => n.Name == "gemm2" && rebuilt.Main.Producer(n.Input[1]) is null);
    }

    [Fact]
    public void ExcludedLayer_StaysFloatInOnnxRuntime_AndNothingRunsUnfused()
    {
        // ONNX Runtime quantizes a float Gemm by itself, per tensor, when a DequantizeLinear feeds it and a
        // QuantizeLinear follows: an excluded layer whose output is quantized must read float values, or it is
        // quantized all the same. The layer before it then has no quantized reader and stays float rather than slower.
        var graph = SensitiveMlp();
        var options = new QdqOptions { Calibration = Feed(graph, 32, 1), ExcludeNodes = new HashSet<string> { "gemm2" }, KeepFloatWhereSlower = false };
        var result = Onnx.Passes.PassManager.Run(graph, [new QdqQuantizationPass(options)])[0];
        Assert.Contains(result.Skipped, s => s.StartsWith("gemm1 (Gemm): only layers left in float read its output", StringComparison.Ordinal));
        var path = Path.Combine(RealModels.TempDir("budget-float-layer"), "mlp.optimized.onnx");
        using (ModelRunner.Load(graph.ToBytes(), new RuntimeOptions(OptimizedModelPath: path))) { }
        var optimized = ModelGraph.Load(path);
        var nodes = optimized.Main.Nodes.ToList();
        foreach (var n in nodes) output.WriteLine($"{n.OpType} {n.Name}");
        var gemm2 = nodes.Single(n => n.Name.Contains("gemm2", StringComparison.Ordinal) && !n.OpType.Contains("Linear", StringComparison.Ordinal));
        Assert.Contains(gemm2.OpType, new[] { "Gemm", "FusedGemm" });
        Assert.Equal("W2", gemm2.Input[1]); // its own float weight, not one ONNX Runtime quantized
        Assert.Equal("QGemm", nodes.Single(n => n.Name == "gemm3").OpType);
        Assert.Single(nodes, n => n.OpType == "QGemm");
        // No weight is dequantized at run time (ONNX Runtime folds a DequantizeLinear of a constant only when nothing fuses it).
        Assert.DoesNotContain(nodes, n => n.OpType == "DequantizeLinear" && optimized.Main.Initializer(n.Input[0]) is not null);
    }

    [Fact]
    public void TimeBudget_StopsAfterTheFirstTry_AndKeepsItWithAWarning()
    {
        var graph = SensitiveMlp();
        var options = new QdqOptions { Calibration = Feed(graph, 32, 1), KeepFloatWhereSlower = false };
        var budget = new AccuracyBudgetOptions
        {
            Eval = Feed(graph, 32, 2), MaxDrop = 0.002, Metric = BudgetMetric.Cosine, TimeBudget = TimeSpan.FromTicks(1), TimingRuns = 0,
        };
        var result = AccuracyBudgetSearch.Run(graph, options, budget);
        Assert.True(result.StoppedByTime);
        var only = Assert.Single(result.Candidates);
        Assert.Equal(BudgetStep.All, only.Step);
        Assert.Same(only, result.Best);
        Assert.False(result.BudgetMet);
        Assert.Empty(result.Sensitivity);
        Assert.Contains(result.Notes, n => n.Contains("time budget", StringComparison.Ordinal));
        Assert.Contains(result.Notes, n => n.StartsWith("WARNING", StringComparison.Ordinal));
    }

    [Fact]
    public void Accuracy_WithoutLabels_IsRefusedNamingTheAlternatives()
    {
        var graph = SensitiveMlp();
        var options = new QdqOptions { Calibration = Feed(graph, 16, 1), KeepFloatWhereSlower = false };
        var budget = new AccuracyBudgetOptions { Eval = Feed(graph, 16, 2), MaxDrop = 1, Metric = BudgetMetric.Accuracy };
        var e = Assert.Throws<InvalidOperationException>(() => AccuracyBudgetSearch.Run(graph, options, budget));
        Assert.Contains("labels", e.Message, StringComparison.Ordinal);
        Assert.Contains("agreement or cosine", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CnnSample_AccuracyBudgetHolds_OnTheWrittenModel()
    {
        var path = RealModels.CnnSample;
        using var runner = ModelRunner.Load(path);
        var specOptions = new DataSpecOptions { ModelPath = path };
        var calibration = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:train", runner.Inputs, specOptions);
        var eval = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:test", runner.Inputs, specOptions);
        var options = new QdqOptions { Calibration = calibration, CalibrationSettings = new() { MaxRows = 256, BatchSize = 32 }, KeepFloatWhereSlower = false };
        var budget = new AccuracyBudgetOptions { Eval = eval, MaxDrop = 0.1, TimingRuns = 0, BatchSize = 100 };
        var graph = ModelGraph.Load(path);
        var result = AccuracyBudgetSearch.Run(graph, options, budget);
        foreach (var c in result.Candidates)
            output.WriteLine($"{c.Step,-11} {c.Describe(),-60} acc {c.Metric:F2} drop {c.Drop:F2}");
        Assert.Equal(BudgetMetric.Accuracy, result.Metric);
        Assert.Equal(4, result.Layers.Count);
        Assert.True(result.BudgetMet);
        Assert.True(result.Best.QuantizedLayers.Count >= 1);

        // Written through the compressor (verified in ONNX Runtime), then measured by the comparer, independently.
        var outPath = Path.Combine(RealModels.TempDir("budget-cnn"), "cnn.budget.onnx");
        ModelCompressor.Compress(path, QdqRecipe.Passes(graph.OnnxOpset, result.BestOptions),
            new CompressionOptions { OutputPath = outPath, Probes = eval });
        var report = ModelComparer.Compare(path, outPath, eval, new EvalOptions { BatchSize = 100, WarmupRuns = 0, MinLatencySamples = 1 });
        var o = report.Outputs[0];
        double drop = 100 * (o.BaselineAccuracy!.Value - o.CandidateAccuracy!.Value);
        output.WriteLine($"written: accuracy {o.BaselineAccuracy:P2} -> {o.CandidateAccuracy:P2}, {result.Best.QuantizedLayers.Count} of 4 layers quantized");
        Assert.Equal(100 * o.BaselineAccuracy.Value, result.BaselineMetric, 6);
        Assert.Equal(result.Best.Drop, drop, 6);
        Assert.True(drop <= 0.1 + 1e-9, $"drop {drop} pt");
        Assert.Contains(ModelGraph.Load(outPath).Main.Nodes, n => n.OpType == "QuantizeLinear");
    }

    /// <summary>A feed that counts how often its batches are enumerated.</summary>
    private sealed class CountingFeed(IDataFeed inner) : IDataFeed
    {
        public int Enumerations { get; private set; }

        public string Description => inner.Description;

        public long? Count => inner.Count;

        public bool HasLabels => inner.HasLabels;

        public IReadOnlyList<ModelInputInfo> Inputs => inner.Inputs;

        public IEnumerable<DataBatch> Batches(int batchSize, int? maxRows = null)
        {
            Enumerations++;
            return inner.Batches(batchSize, maxRows);
        }
    }

    /// <summary>Reports synchronously (<see cref="Progress{T}"/> would post to the thread pool).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
