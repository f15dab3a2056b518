using MLNetCompress.Calibration;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.Budget;
using MLNetCompress.Quantization.KernelSafety;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Xunit.Abstractions;

namespace MLNetCompress.Tests.Quantization.Qdq;

/// <summary>The int8 speed check (never slower than float) and the verification gate's recovery (remedies instead of a refusal).</summary>
public class SpeedCheckAndRecoveryTests(ITestOutputHelper output)
{
    private static IDataFeed Mnist(string model, FashionMnistSplit split)
    {
        using var runner = ModelRunner.Load(model);
        return DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:{split.ToString().ToLowerInvariant()}", runner.Session);
    }

    [Theory]
    [InlineData(new[] { 1.00, 0.99, 0.50 }, 2)] // clearly fastest
    [InlineData(new[] { 1.00, 0.99, 0.995 }, 0)] // every candidate within 2 % of the fastest: the fewest float layers
    [InlineData(new[] { 1.00, 0.90, 0.89 }, 1)]  // 0.90 is within 2 % of 0.89: one float layer rather than two
    [InlineData(new[] { 0.50, 0.90, 0.89 }, 0)]  // all int8 fastest
    public void WholeModelChoice_IsTheFastest_AndTiesGoToFewerFloatLayers(double[] ms, int expected) =>
        Assert.Equal(expected, LayerSpeedCheck.Choose(ms));

    [Fact]
    public void SpeedCheck_TimesEveryLayer_AndWhatItKeepsFloatIsFloatInTheModel()
    {
        var cnn = RealModels.CnnSample;
        var graph = ModelGraph.Load(cnn);
        var options = new QdqOptions { Calibration = Mnist(cnn, FashionMnistSplit.Train), CalibrationSettings = new CalibrationOptions { MaxRows = 64, BatchSize = 16 } };
        var passes = QdqRecipe.Passes(graph.OnnxOpset, options);
        var path = Path.Combine(RealModels.TempDir("speed-check"), "cnn.int8.onnx");
        var result = ModelCompressor.Compress(cnn, passes, new CompressionOptions { OutputPath = path });
        graph = ModelGraph.Load(path);
        var plan = ((QdqQuantizationPass)passes[^1]).LastPlan!;
        foreach (var s in plan.Speeds) output.WriteLine(s.ToString());
        output.WriteLine(plan.SpeedSummary);
        // The timings reach the layer rows, and from them the report (JSON, Markdown, HTML).
        Assert.All(result.Layers, l => Assert.True(l.FloatMs > 0 && l.CompressedMs > 0, $"{l.Weight}: {l.FloatMs} / {l.CompressedMs}"));
        var report = MLNetCompress.Reporting.CompressionReport.Build(File.ReadAllBytes(cnn), File.ReadAllBytes(path), result);
        Assert.All(report.Layers, l => Assert.NotNull(l.FloatMs));
        Assert.Contains("## Layer speed", MLNetCompress.Reporting.ReportWriter.ToMarkdown(report), StringComparison.Ordinal);
        Assert.Contains("plot-speed", MLNetCompress.Reporting.ReportWriter.ToHtml(report), StringComparison.Ordinal);

        // Every conv and gemm of the CNN is timed, at its calibration shape (batch 16).
        Assert.Equal(4, plan.Speeds.Count);
        Assert.All(plan.Speeds, s => Assert.Equal(16, s.InputShape[0]));
        Assert.All(plan.Speeds, s => Assert.True(s.FloatMs > 0 && s.Int8Ms > 0 && s.Int8InPlaceMs >= s.Int8Ms));
        Assert.Equal([1L, 28, 28], plan.Speeds.Single(s => s.Layer.Contains("features.0", StringComparison.Ordinal)).InputShape.Skip(1));
        Assert.Contains("whole model", plan.SpeedSummary, StringComparison.Ordinal);
        Assert.Contains("every layer int8", plan.SpeedSummary, StringComparison.Ordinal);
        // Whatever this CPU decided, the model says the same: a layer kept float reads a float weight, the others int8.
        foreach (var s in plan.Speeds)
        {
            var node = graph.Main.Nodes.Single(n => GraphScope.NodeLabel(n) == s.Layer);
            bool int8Weight = graph.Main.Producer(node.Input[1]) is { OpType: "DequantizeLinear" };
            Assert.Equal(!s.KeptFloat, int8Weight);
        }
    }

    [Fact]
    public void SpeedCheckOff_TimesNothing()
    {
        var cnn = RealModels.CnnSample;
        var graph = ModelGraph.Load(cnn);
        var options = new QdqOptions { Calibration = Mnist(cnn, FashionMnistSplit.Train), KeepFloatWhereSlower = false, CalibrationSettings = new CalibrationOptions { MaxRows = 32 } };
        var passes = QdqRecipe.Passes(graph.OnnxOpset, options);
        PassManager.Run(graph, passes);
        var plan = ((QdqQuantizationPass)passes[^1]).LastPlan!;
        Assert.Empty(plan.Speeds);
        Assert.Null(plan.SpeedSummary);
        Assert.Equal(4, plan.NodeList.Count(n => plan.Rules[n].IsCompute));
    }

    /// <summary>x[N,64] → MatMul W1 (one weight 2000× the others) → Relu → MatMul W2 → Relu → MatMul W3 → y: per tensor, W1's
    /// int8 codes are all 0 but the outlier, so the int8 model is wrong; W1 alone is to blame.</summary>
    private static byte[] OutlierMlp()
    {
        var w1 = TestTensors.RandomValues(64 * 32, 1);
        w1[5] = 2000f;
        return TestModels.Model(13)
            .Input("x", OnnxDataType.Float, "batch", 64)
            .Initializer(TestTensors.Float("W1", [64, 32], w1))
            .Initializer(TestTensors.Random("W2", [32, 32], 2))
            .Initializer(TestTensors.Random("W3", [32, 10], 3))
            .Node("MatMul", ["x", "W1"], ["h1"], name: "mm1")
            .Node("Relu", ["h1"], ["r1"], name: "relu1")
            .Node("MatMul", ["r1", "W2"], ["h2"], name: "mm2")
            .Node("Relu", ["h2"], ["r2"], name: "relu2")
            .Node("MatMul", ["r2", "W3"], ["y"], name: "mm3")
            .Output("y", OnnxDataType.Float, "batch", 10)
            .ToBytes();
    }

    [Fact]
    public void GateFailure_IsRecovered_ByFindingTheResponsibleLayer_AndTheNotesSaySo()
    {
        var model = OutlierMlp();
        using var runner = ModelRunner.Load(model);
        var calibration = new RandomFeed(runner.Inputs, 64, 1);
        var probes = new RandomFeed(runner.Inputs, 16, 2);
        var options = new QdqOptions { Calibration = calibration, PerChannel = false, KeepFloatWhereSlower = false };
        var path = Path.Combine(RealModels.TempDir("gate-recovery"), "outlier.int8.onnx");

        // Without the recovery the gate refuses the model...
        // The gate at 0.95: the other layers' int8 error on random rows is a few percent, mm1's is everything.
        var gate = new VerifyOptions { MinCosine = 0.95 };
        var refused = Assert.Throws<CompressionException>(() => ModelCompressor.Compress(model, QdqRecipe.Passes(13, options),
            new CompressionOptions { OutputPath = path, Probes = probes, Verification = gate, RecoverFailedQuantization = false }));
        output.WriteLine(refused.Message);
        Assert.Contains("min cosine", refused.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(path));

        // ... with it, the layer responsible is found and remedied, and the model is written.
        var result = ModelCompressor.Compress(model, QdqRecipe.Passes(13, options), new CompressionOptions { OutputPath = path, Probes = probes, Verification = gate });
        foreach (var n in result.Notes) output.WriteLine(n);
        output.WriteLine(result.Verification.Summary);
        Assert.True(result.Verification.MinCosine >= 0.95, $"min cosine {result.Verification.MinCosine}");
        Assert.Contains(result.Notes, n => n.StartsWith("the verification gate refused", StringComparison.Ordinal));
        Assert.Contains(result.Notes, n => n.StartsWith("most sensitive layers", StringComparison.Ordinal) && n.Contains("mm1 ", StringComparison.Ordinal));
        var written = ModelGraph.Load(path);
        var mm1 = written.Main.Nodes.Single(n => n.Name == "mm1");
        // uint8 weights cannot help a per-tensor scale this wide: mm1 is kept float, the others int8.
        Assert.Equal("W1", mm1.Input[1]);
        Assert.Equal(2, written.Main.Nodes.Count(n => n.OpType == "MatMul" && written.Main.Producer(n.Input[1]) is { OpType: "DequantizeLinear" }));
        Assert.Equal(2, result.Layers.Count);
    }

    [Fact]
    public void GateRecovery_WorksThroughARecipe_AndTheStepsSizeRowIsTheRerunOnly()
    {
        var model = OutlierMlp();
        using var runner = ModelRunner.Load(model);
        var recipe = MLNetCompress.Recipes.Recipe.Parse("""
            { "minCosine": 0.95, "steps": [ { "step": "quantize-static", "perChannel": false, "keepFloatWhereSlower": false } ] }
            """);
        var path = Path.Combine(RealModels.TempDir("gate-recovery-recipe"), "outlier.int8.onnx");
        var result = MLNetCompress.Recipes.RecipeRunner.Run(model, recipe, new MLNetCompress.Recipes.RecipeRunOptions
        {
            OutputPath = path,
            Calibration = new RandomFeed(runner.Inputs, 64, 1),
            Probes = new RandomFeed(runner.Inputs, 16, 2),
        });
        foreach (var n in result.Notes) output.WriteLine(n);
        Assert.True(result.Verification.MinCosine >= 0.95, $"min cosine {result.Verification.MinCosine}");
        Assert.Contains(result.Notes, n => n.StartsWith("remedy:", StringComparison.Ordinal) && n.Contains("mm1", StringComparison.Ordinal));
        Assert.Equal("W1", ModelGraph.Load(path).Main.Nodes.Single(n => n.Name == "mm1").Input[1]);
        // One row per step even though the step ran twice, and it is the re-run's size.
        Assert.Single(result.Stages, st => st.Name.StartsWith("step 1", StringComparison.Ordinal));
    }

    [Fact]
    public void UInt8WeightNodes_StoreThoseWeightsAsUInt8WithZeroPoint128_AndTheRestAsGuardedInt8()
    {
        var model = TestModels.Mlp(inFeatures: 64, hidden: 128, outFeatures: 10).ToBytes();
        using var runner = ModelRunner.Load(model);
        var feed = new RandomFeed(runner.Inputs, 32, 1);
        var graph = ModelGraph.FromBytes(model);
        // MatMul + Add become one Gemm in preparation: name the layer as the pass sees it.
        PassManager.Run(graph, MLNetCompress.Preparation.PreparationPasses.Default());
        string first = GraphScope.NodeLabel(graph.Main.Nodes.Single(n => n.OpType == "Gemm" && n.Input[1] == "W1"));
        var options = new QdqOptions
        {
            Calibration = feed,
            KeepFloatWhereSlower = false,
            Uint8WeightNodes = new HashSet<string> { first },
        };
        PassManager.Run(graph, [new QdqQuantizationPass(options)]);
        var fc1 = graph.Main.Producer(graph.Main.Nodes.Single(n => n.OpType == "Gemm" && n.Input[1].StartsWith("W1", StringComparison.Ordinal)).Input[1])!;
        var q = graph.Main.Initializer(fc1.Input[0])!;
        var zp = TensorData.ToFloatArray(graph.Main.Initializer(fc1.Input[2])!);
        Assert.Equal((int)OnnxDataType.UInt8, q.DataType);
        Assert.All(zp, z => Assert.Equal(128f, z));
        // The same values as 8-bit symmetric codes: the scale is max|w| / 127 (no pair-safe widening on a uint8 weight).
        var w = TensorData.ToFloatArray(ModelGraph.FromBytes(model).Main.Initializer("W1")!);
        var scales = TensorData.ToFloatArray(graph.Main.Initializer(fc1.Input[1])!);
        Assert.Equal(w.Where((_, i) => i % 128 == 0).Max(MathF.Abs) / 127f, scales[0], 6);
        var fc2 = graph.Main.Producer(graph.Main.Nodes.Single(n => n.OpType == "Gemm" && n.Input[1].StartsWith("W2", StringComparison.Ordinal)).Input[1])!;
        Assert.Equal((int)OnnxDataType.Int8, graph.Main.Initializer(fc2.Input[0])!.DataType);
        var report = ModelComparer.Compare(model, graph.ToBytes(), new RandomFeed(runner.Inputs, 64, 2), new EvalOptions { WarmupRuns = 0, MinLatencySamples = 1 });
        Assert.True(report.Outputs[0].MinCosine > 0.99, $"min cosine {report.Outputs[0].MinCosine}");
    }

    [Fact]
    public void BudgetSearch_WithTheUInt8Remedy_GivesTheSensitiveLayersUInt8Weights_NotFloat()
    {
        var model = TestModels.Mlp(inFeatures: 64, hidden: 128, outFeatures: 10).ToGraph();
        using var runner = ModelRunner.Load(model.ToBytes());
        var options = new QdqOptions { Calibration = new RandomFeed(runner.Inputs, 32, 1) };
        // A budget nothing but exact weights meets on the calibration rows themselves: the search ends at every layer uint8.
        var result = AccuracyBudgetSearch.Run(model, options, new AccuracyBudgetOptions
        {
            Eval = new RandomFeed(runner.Inputs, 16, 3),
            MaxDrop = 0,
            Metric = BudgetMetric.MinCosine,
            Remedy = BudgetRemedy.Uint8Weights,
            Search = BudgetSearchStrategy.Greedy,
        });
        foreach (var c in result.Candidates) output.WriteLine($"{c.Describe()}: {c.Metric:F6}");
        Assert.Contains(result.Candidates, c => c.Remedy == BudgetRemedy.Uint8Weights && c.Describe().Contains("uint8 weights", StringComparison.Ordinal));
        Assert.Empty(result.BestOptions.ExcludeNodes);
        Assert.Equal(result.Best.Excluded.Count, result.BestOptions.Uint8WeightNodes.Count);
    }
}
