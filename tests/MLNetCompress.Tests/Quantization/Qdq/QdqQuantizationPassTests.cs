using Microsoft.ML.OnnxRuntime;
using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Xunit.Abstractions;

namespace MLNetCompress.Tests.Quantization.Qdq;

/// <summary>Static QDQ on built models and the CNN sample: ONNX Runtime really fuses it, and the numbers match independent formulas.</summary>
public class QdqQuantizationPassTests(ITestOutputHelper output)
{
    /// <summary>x[N,3,8,8] → Conv(8)+Relu → Conv(16)+Relu → MaxPool → Flatten → Gemm(10, transB).</summary>
    private static ModelGraph SmallCnn(long opset = 13, float biasScale = 0.1f, bool transB = true) =>
        TestModels.Model(opset)
            .Input("x", OnnxDataType.Float, "batch", 3, 8, 8)
            .Initializer(TestTensors.Random("W1", [8, 3, 3, 3], 1))
            .Initializer("b1", [8], TestTensors.RandomValues(8, 2).Select(v => v * biasScale).ToArray())
            .Initializer(TestTensors.Random("W2", [16, 8, 3, 3], 3))
            .Initializer("b2", [16], TestTensors.RandomValues(16, 4).Select(v => v * biasScale).ToArray())
            .Initializer(TestTensors.Random("W3", transB ? [10, 256] : [256, 10], 5))
            .Initializer(TestTensors.Random("b3", [10], 6))
            .Node("Conv", ["x", "W1", "b1"], ["c1"], "conv1", "", Attr.Ints("pads", 1, 1, 1, 1))
            .Node("Relu", ["c1"], ["r1"], name: "relu1")
            .Node("Conv", ["r1", "W2", "b2"], ["c2"], "conv2", "", Attr.Ints("pads", 1, 1, 1, 1))
            .Node("Relu", ["c2"], ["r2"], name: "relu2")
            .Node("MaxPool", ["r2"], ["p"], "pool", "", Attr.Ints("kernel_shape", 2, 2), Attr.Ints("strides", 2, 2))
            .Node("Flatten", ["p"], ["f"], name: "flatten")
            .Node("Gemm", ["f", "W3", "b3"], ["y"], "fc", "", Attr.Int("transB", transB ? 1 : 0))
            .Output("y", OnnxDataType.Float, "batch", 10)
            .ToGraph();

    private static IDataFeed Feed(ModelGraph graph, int rows = 64, int seed = 1)
    {
        using var runner = ModelRunner.Load(graph.ToBytes());
        return new RandomFeed(runner.Inputs, rows, seed);
    }

    private static QdqOptions Options(IDataFeed feed, RangeMethod method = RangeMethod.MinMax, QdqActivationType activations = QdqActivationType.U8) =>
        new() { Calibration = feed, Activations = activations, Range = new RangeMethodOptions { Method = method }, KeepFloatWhereSlower = false };

    /// <summary>The op types in the model ONNX Runtime writes after its optimisations.</summary>
    private static HashSet<string> OptimizedOps(byte[] model, string name)
    {
        var path = Path.Combine(RealModels.TempDir("qdq-optimized"), name + ".optimized.onnx");
        using (ModelRunner.Load(model, new RuntimeOptions(GraphOptimizationLevel: GraphOptimizationLevel.ORT_ENABLE_EXTENDED, OptimizedModelPath: path))) { }
        return ModelGraph.Load(path).Main.Nodes.Select(n => n.OpType).ToHashSet(StringComparer.Ordinal);
    }

    private static TensorProto Init(ModelGraph g, string name) => g.Main.Initializer(name) ?? throw new KeyNotFoundException(name);

    /// <summary>The DequantizeLinear feeding input <paramref name="index"/> of the node named <paramref name="node"/>.</summary>
    private static NodeProto DequantizeOf(ModelGraph g, string node, int index)
    {
        var n = g.Main.Nodes.Single(x => x.Name == node);
        var dq = g.Main.Producer(n.Input[index])!;
        Assert.Equal("DequantizeLinear", dq.OpType);
        return dq;
    }

    [Theory]
    [InlineData(QdqActivationType.U8)]
    [InlineData(QdqActivationType.S8)]
    public void SmallCnn_FusesToQLinearConvAndQGemm_AndWeightsAndBiasesMatchTheFormulas(QdqActivationType activations)
    {
        var original = SmallCnn();
        var graph = SmallCnn();
        var feed = Feed(graph);
        var result = PassManager.Run(graph, [new QdqQuantizationPass(Options(feed, activations: activations))])[0];
        Assert.True(result.Modified);

        // (1) weights: q = clamp(round_half_even(w / s_c), -127, 127) with s_c = max|w_c| / 127 per output channel, widened
        // by the default pair-sum guard only as far as its bound needs.
        foreach (var (node, weight, axisExpected) in new[] { ("conv1", "W1", 0L), ("conv2", "W2", 0L), ("fc", "W3", 0L) })
        {
            var dq = DequantizeOf(graph, node, 1);
            Assert.Equal(axisExpected, dq.Attribute.Single(a => a.Name == "axis").I);
            var w = TensorData.ToFloatArray(Init(original, weight));
            var dims = Init(original, weight).Dims.ToArray();
            var q = TensorData.ToFloatArray(Init(graph, dq.Input[0]));
            var scales = TensorData.ToFloatArray(Init(graph, dq.Input[1]));
            Assert.Equal((int)OnnxDataType.Int8, Init(graph, dq.Input[0]).DataType);
            int channels = (int)dims[0], per = w.Length / channels;
            for (int c = 0; c < channels; c++)
                PairSafeChecks.AssertChannel(w.AsSpan(c * per, per).ToArray(), scales[c], q.AsSpan(c * per, per).ToArray());
        }

        // (2) biases: int32 with q = round(b / (s_x · s_w)), s_x the scale of the node's quantized input.
        foreach (var (node, bias) in new[] { ("conv1", "b1"), ("conv2", "b2"), ("fc", "b3") })
        {
            var bdq = DequantizeOf(graph, node, 2);
            Assert.Equal((int)OnnxDataType.Int32, Init(graph, bdq.Input[0]).DataType);
            var xdq = DequantizeOf(graph, node, 0);
            float sx = TensorData.ToFloatArray(Init(graph, xdq.Input[1]))[0];
            var sw = TensorData.ToFloatArray(Init(graph, DequantizeOf(graph, node, 1).Input[1]));
            var b = TensorData.ToFloatArray(Init(original, bias));
            var qb = TensorData.ToFloatArray(Init(graph, bdq.Input[0]));
            for (int c = 0; c < b.Length; c++) Assert.Equal(Math.Round(b[c] / (double)(sx * sw[c]), MidpointRounding.ToEven), qb[c]);
        }

        // (3) ONNX Runtime fuses: the optimized model runs QLinearConv and QGemm, with no float Conv or Gemm left.
        var ops = OptimizedOps(graph.ToBytes(), "small-cnn-" + activations);
        output.WriteLine($"{activations}: optimized ops {string.Join(", ", ops.Order())}");
        Assert.Contains("QLinearConv", ops);
        Assert.Contains("QGemm", ops);
        Assert.DoesNotContain("Conv", ops);
        Assert.DoesNotContain("Gemm", ops);

        // (4) the outputs stay close to float.
        var report = ModelComparer.Compare(original.ToBytes(), graph.ToBytes(), Feed(original, 64, 2),
            new EvalOptions { WarmupRuns = 0, MinLatencySamples = 1 });
        output.WriteLine($"{activations}: cosine {report.Outputs[0].MeanCosine:F5}, top-1 agreement {report.Outputs[0].Top1Agreement:P1}");
        Assert.True(report.Outputs[0].MeanCosine > 0.99, $"cosine {report.Outputs[0].MeanCosine}");
    }

    [Fact]
    public void Mlp_MatMulsFuse_AndWeightsArePerOutputColumn()
    {
        var original = TestModels.Mlp(inFeatures: 64, hidden: 128, outFeatures: 10).ToGraph();
        var graph = TestModels.Mlp(inFeatures: 64, hidden: 128, outFeatures: 10).ToGraph();
        PassManager.Run(graph, [new QdqQuantizationPass(Options(Feed(graph)))]);
        // MatMul's B is [K, N]: one scale per output column, the last axis.
        var dq = DequantizeOf(graph, "fc1", 1);
        Assert.Equal(1, dq.Attribute.Single(a => a.Name == "axis").I);
        Assert.Equal(128, Init(graph, dq.Input[1]).Dims.Single());

        var ops = OptimizedOps(graph.ToBytes(), "mlp");
        output.WriteLine($"MLP: optimized ops {string.Join(", ", ops.Order())}");
        Assert.True(ops.Contains("QLinearMatMul") || ops.Contains("QGemm") || ops.Contains("MatMulIntegerToFloat"), string.Join(", ", ops));
        Assert.DoesNotContain("MatMul", ops);

        var report = ModelComparer.Compare(original.ToBytes(), graph.ToBytes(), Feed(original, 64, 2), new EvalOptions { WarmupRuns = 0, MinLatencySamples = 1 });
        Assert.True(report.Outputs[0].MeanCosine > 0.99, $"cosine {report.Outputs[0].MeanCosine}");
    }

    [Fact]
    public void ConvTranspose_WeightScalesAlongAxis1_AndOutputsStayClose()
    {
        ModelGraph Build() => TestModels.Model(13)
            .Input("x", OnnxDataType.Float, "batch", 4, 6, 6)
            .Initializer(TestTensors.Random("W", [4, 6, 3, 3], 11))
            .Initializer(TestTensors.Random("b", [6], 12))
            .Initializer(TestTensors.Random("Wfc", [5, 6 * 13 * 13], 13))
            .Node("ConvTranspose", ["x", "W", "b"], ["t"], "up", "", Attr.Ints("strides", 2, 2))
            .Node("Relu", ["t"], ["r"], name: "relu")
            .Node("Flatten", ["r"], ["f"], name: "flatten")
            .Node("Gemm", ["f", "Wfc"], ["y"], "fc", "", Attr.Int("transB", 1))
            .Output("y", OnnxDataType.Float, "batch", 5)
            .ToGraph();
        var original = Build();
        var graph = Build();
        // Not a default op (ONNX Runtime does not fuse it): asked for explicitly.
        Assert.DoesNotContain("ConvTranspose", QdqOptions.DefaultOps);
        var options = Options(Feed(graph)) with { Ops = new HashSet<string>(QdqOptions.DefaultOps) { "ConvTranspose" } };
        PassManager.Run(graph, [new QdqQuantizationPass(options)]);
        var dq = DequantizeOf(graph, "up", 1);
        Assert.Equal(1, dq.Attribute.Single(a => a.Name == "axis").I);
        Assert.Equal(6, Init(graph, dq.Input[1]).Dims.Single());
        Assert.Equal((int)OnnxDataType.Int32, Init(graph, DequantizeOf(graph, "up", 2).Input[0]).DataType);
        output.WriteLine($"ConvTranspose: optimized ops {string.Join(", ", OptimizedOps(graph.ToBytes(), "convtranspose").Order())}");
        var report = ModelComparer.Compare(original.ToBytes(), graph.ToBytes(), Feed(original, 32, 2), new EvalOptions { WarmupRuns = 0, MinLatencySamples = 1 });
        Assert.True(report.Outputs[0].MeanCosine > 0.99, $"cosine {report.Outputs[0].MeanCosine}");
    }

    [Fact]
    public void PerTensor_RunsAtOpset11_WithScalarWeightScales_AndFuses()
    {
        var graph = SmallCnn(opset: 11);
        var options = Options(Feed(graph)) with { PerChannel = false };
        Assert.Empty(QdqRecipe.Passes(graph.OnnxOpset, options).OfType<MLNetCompress.Preparation.OpsetUpgradePass>());
        PassManager.Run(graph, [new QdqQuantizationPass(options)]);
        var dq = DequantizeOf(graph, "conv2", 1);
        Assert.DoesNotContain(dq.Attribute, a => a.Name == "axis");
        Assert.Empty(Init(graph, dq.Input[1]).Dims);
        Assert.Contains("QLinearConv", OptimizedOps(graph.ToBytes(), "small-cnn-per-tensor"));
    }

    [Fact]
    public void GemmWithoutTransB_ScalesAlongAxis1_AndFusesToQGemm()
    {
        var graph = SmallCnn(transB: false);
        PassManager.Run(graph, [new QdqQuantizationPass(Options(Feed(graph)))]);
        var dq = DequantizeOf(graph, "fc", 1);
        Assert.Equal(1, dq.Attribute.Single(a => a.Name == "axis").I);
        Assert.Equal(10, Init(graph, dq.Input[1]).Dims.Single());
        Assert.Contains("QGemm", OptimizedOps(graph.ToBytes(), "small-cnn-gemm-nt"));
    }

    [Fact]
    public void ConvWhoseOutputIsAGraphOutput_StaysFloat_RatherThanSlower()
    {
        var graph = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, "batch", 3, 8, 8)
            .Initializer(TestTensors.Random("W", [4, 3, 3, 3], 1))
            .Node("Conv", ["x", "W"], ["y"], name: "last")
            .Output("y", OnnxDataType.Float, "batch", 4, 6, 6)
            .ToGraph();
        var result = PassManager.Run(graph, [new QdqQuantizationPass(Options(Feed(graph)))])[0];
        Assert.False(result.Modified);
        Assert.Contains(result.Skipped, s => s.Contains("last", StringComparison.Ordinal) && s.Contains("slower", StringComparison.Ordinal));
        Assert.DoesNotContain(graph.Main.Nodes, n => n.OpType == "DequantizeLinear");
    }

    [Fact]
    public void AlreadyQuantized_IsLeftAlone_WithAMessage()
    {
        var graph = SmallCnn();
        var feed = Feed(graph);
        PassManager.Run(graph, [new QdqQuantizationPass(Options(feed))]);
        var before = graph.ToBytes();
        var logs = new List<string>();
        var again = PassManager.Run(graph, [new QdqQuantizationPass(Options(feed))], new PassContext { Log = logs.Add })[0];
        Assert.False(again.Modified);
        Assert.Contains(logs, l => l.Contains("already quantized", StringComparison.Ordinal) && l.Contains("QuantizeLinear", StringComparison.Ordinal));
        Assert.Equal(before, graph.ToBytes());
    }

    [Fact]
    public void OldOpset_IsRefusedClearly_AndTheRecipeUpgradesFirst()
    {
        var graph = SmallCnn(opset: 11);
        var feed = Feed(graph);
        var e = Assert.Throws<InvalidOperationException>(() => PassManager.Run(graph, [new QdqQuantizationPass(Options(feed))]));
        Assert.Contains("opset 13", e.Message, StringComparison.Ordinal);
        Assert.Contains("upgrade", e.Message, StringComparison.Ordinal);

        var notes = new List<string>();
        var passes = QdqRecipe.Passes(graph.OnnxOpset, Options(feed), notes);
        PassManager.Run(graph, passes);
        Assert.Equal(13, graph.OnnxOpset);
        Assert.Contains(notes, n => n.Contains("from 11 to 13", StringComparison.Ordinal));
        Assert.Contains(graph.Main.Nodes, n => n.OpType == "QuantizeLinear");
    }

    [Fact]
    public void BiasThatWouldOverflowInt32_StaysFloat_AndIsReported()
    {
        var graph = SmallCnn(biasScale: 1e12f);
        var result = PassManager.Run(graph, [new QdqQuantizationPass(Options(Feed(graph)))])[0];
        Assert.Contains(result.Skipped, s => s.Contains("b1", StringComparison.Ordinal) && s.Contains("overflow int32", StringComparison.Ordinal));
        var conv1 = graph.Main.Nodes.Single(n => n.Name == "conv1");
        Assert.Equal("b1", conv1.Input[2]);
        Assert.Equal("DequantizeLinear", graph.Main.Producer(conv1.Input[1])!.OpType);
    }

    [Fact]
    public void ExcludedNodes_StayFloat()
    {
        var graph = SmallCnn();
        var options = Options(Feed(graph)) with { ExcludeNodes = new HashSet<string> { "conv2" } };
        var result = PassManager.Run(graph, [new QdqQuantizationPass(options)])[0];
        Assert.Contains(result.Skipped, s => s.Contains("conv2", StringComparison.Ordinal) && s.Contains("excluded", StringComparison.Ordinal));
        Assert.Equal("W2", graph.Main.Nodes.Single(n => n.Name == "conv2").Input[1]);
    }

    [Theory]
    [InlineData(RangeMethod.MinMax)]
    [InlineData(RangeMethod.Entropy)]
    [InlineData(RangeMethod.Percentile)]
    [InlineData(RangeMethod.Mse)]
    public void CnnSample_CalibratedOnTrain_KeepsTestAccuracyWithinAPoint_AndFuses(RangeMethod method)
    {
        var path = RealModels.CnnSample;
        using var runner = ModelRunner.Load(path);
        var train = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:train", runner.Session);
        var test = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:test", runner.Session);
        var graph = ModelGraph.Load(path);
        var notes = new List<string>();
        var passes = QdqRecipe.Passes(graph.OnnxOpset, Options(train, method) with
        {
            CalibrationSettings = new CalibrationOptions { MaxRows = 256, BatchSize = 32 },
        }, notes);
        PassManager.Run(graph, passes);
        var quantized = graph.ToBytes();
        foreach (var a in ((QdqQuantizationPass)passes[^1]).LastPlan!.Activations) output.WriteLine($"{method}: {a}");

        var ops = OptimizedOps(quantized, "cnn-" + method);
        output.WriteLine($"{method}: {string.Join("; ", notes)} optimized ops {string.Join(", ", ops.Order())}");
        Assert.Contains("QLinearConv", ops);
        Assert.DoesNotContain("Conv", ops);

        var report = ModelComparer.Compare(File.ReadAllBytes(path), quantized, test, new EvalOptions { BatchSize = 100, WarmupRuns = 2, MinLatencySamples = 40 });
        var logits = report.Outputs[0];
        output.WriteLine($"{method}: accuracy {logits.BaselineAccuracy:P1} → {logits.CandidateAccuracy:P1}, cosine {logits.MeanCosine:F4}, latency ratio {report.LatencyRatio:F2}");
        Assert.InRange(logits.CandidateAccuracy!.Value, logits.BaselineAccuracy!.Value - 0.01, 1.0);
    }
}
