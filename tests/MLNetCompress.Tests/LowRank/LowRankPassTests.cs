using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.LowRank;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.LowRank;

public class LowRankPassTests
{
    private static readonly LowRankOptions FullRank = new() { RankRatio = 1, RequireFewerParameters = false, MinElements = 0 };

    [Fact]
    public void MatMulWithBatchedActivationsIsExactAtFullRank()
    {
        var model = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, 2, 5, 24)
            .Initializer(TestTensors.Random("W", [24, 40], 3))
            .Node("MatMul", ["x", "W"], ["y"], name: "mm")
            .Output("y", OnnxDataType.Float, 2, 5, 40);
        var (before, after, plan) = Split(model, FullRank);
        Assert.Equal(2, after.Main.Nodes.Count(n => n.OpType == "MatMul"));
        Assert.DoesNotContain(after.Main.Initializers, t => t.Name == "W");
        Assert.Equal(24, plan.Layers.Single().Ranks[0]);
        var x = Inputs("x", [2, 5, 24], 7);
        AssertClose(Run(before, x), Run(after.ToBytes(), x), 1e-4);
    }

    [Theory]
    [InlineData(13, 0, 0, false)]
    [InlineData(13, 1, 1, true)]
    [InlineData(9, 1, 0, true)]  // opset 9: the first Gemm needs a (zero) C
    [InlineData(11, 0, 1, false)] // from opset 11 C is optional
    public void GemmAttributesAreKept(int opset, int transA, int transB, bool withC)
    {
        const int m = 6, k = 20, n = 12;
        var builder = TestModels.Model(opset)
            .Input("a", OnnxDataType.Float, transA == 1 ? new Dim[] { k, m } : new Dim[] { m, k })
            .Initializer(TestTensors.Random("B", transB == 1 ? new long[] { n, k } : new long[] { k, n }, 4));
        string[] inputs = ["a", "B"];
        if (withC)
        {
            builder.Initializer(TestTensors.Random("C", [n], 5));
            inputs = ["a", "B", "C"];
        }
        var model = builder
            .Node("Gemm", inputs, ["y"], "gemm", "", Attr.Float("alpha", 0.7f), Attr.Float("beta", 1.3f), Attr.Int("transA", transA), Attr.Int("transB", transB))
            .Output("y", OnnxDataType.Float, m, n);
        var (before, after, _) = Split(model, FullRank);
        Assert.Equal(2, after.Main.Nodes.Count(x => x.OpType == "Gemm"));
        var x = Inputs("a", transA == 1 ? new long[] { k, m } : new long[] { m, k }, 8);
        AssertClose(Run(before, x), Run(after.ToBytes(), x), 1e-4);
    }

    [Theory]
    [InlineData(ConvFactorization.Channel)]
    [InlineData(ConvFactorization.Spatial)]
    [InlineData(ConvFactorization.Tucker)]
    public void ConvFormsAreExactAtFullRankAndImproveWithRank(ConvFactorization form)
    {
        // Stride, asymmetric pads and dilation: each form must put them on the right conv.
        var model = ConvModel(Attr.Ints("strides", 2, 1), Attr.Ints("pads", 1, 0, 2, 1), Attr.Ints("dilations", 1, 2));
        var x = Inputs("x", [2, 8, 11, 13], 12);
        var reference = Run(model.ToBytes(), x);
        var (_, full, _) = Split(model, FullRank with { Conv = form });
        AssertClose(reference, Run(full.ToBytes(), x), 1e-4);

        double previous = double.PositiveInfinity;
        foreach (var ratio in new[] { 0.2, 0.5, 0.8 })
        {
            var (_, split, _) = Split(model, FullRank with { Conv = form, RankRatio = ratio });
            double error = RelativeError(reference, Run(split.ToBytes(), x));
            Assert.True(error < previous, $"{form} at ratio {ratio}: error {error} not below {previous}");
            previous = error;
        }
    }

    [Theory]
    [InlineData(ConvFactorization.Spatial, "SAME_UPPER")]
    [InlineData(ConvFactorization.Spatial, "SAME_LOWER")]
    [InlineData(ConvFactorization.Tucker, "SAME_UPPER")]
    [InlineData(ConvFactorization.Channel, "VALID")]
    public void AutoPadIsKept(ConvFactorization form, string autoPad)
    {
        var model = ConvModel(Attr.String("auto_pad", autoPad), Attr.Ints("kernel_shape", 3, 3));
        var x = Inputs("x", [1, 8, 9, 10], 2);
        var (before, after, _) = Split(model, FullRank with { Conv = form });
        AssertClose(Run(before, x), Run(after.ToBytes(), x), 1e-4);
    }

    [Theory]
    [InlineData(ConvFactorization.Channel)]
    [InlineData(ConvFactorization.Spatial)]
    [InlineData(ConvFactorization.Tucker)]
    public void BatchNormAfterAConvIsFoldedIntoTheFactors(ConvFactorization form)
    {
        var model = TestModels.Model(8, irVersion: 3)
            .Input("x", OnnxDataType.Float, 1, 8, 9, 9)
            .Initializer(TestTensors.Random("W", [12, 8, 3, 3], 21))
            .Initializer(TestTensors.Float("scale", [12], TestTensors.RandomValues(12, 1).Select(v => 2 * v).ToArray()))
            .Initializer(TestTensors.Random("shift", [12], 2))
            .Initializer(TestTensors.Random("mean", [12], 3))
            .Initializer(TestTensors.Float("var", [12], TestTensors.RandomValues(12, 4).Select(v => 0.1f + v * v).ToArray()))
            .Node("Conv", ["x", "W"], ["c"], "conv", "", Attr.Ints("pads", 1, 1, 1, 1))
            .Node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["y"], "bn", "", Attr.Float("epsilon", 1e-3f))
            .Output("y", OnnxDataType.Float, 1, 12, 9, 9)
            .InitializersAsInputs();
        var x = Inputs("x", [1, 8, 9, 9], 5);
        var (before, after, plan) = Split(model, FullRank with { Conv = form });
        Assert.DoesNotContain(after.Main.Nodes, n => n.OpType == "BatchNormalization");
        Assert.DoesNotContain(after.Main.Initializers, t => t.Name is "scale" or "var" or "W");
        Assert.Single(plan.Layers);
        AssertClose(Run(before, x), Run(after.ToBytes(), x), 1e-4);
    }

    [Fact]
    public void GroupedAndDepthwiseConvsAreSkippedWithAReason()
    {
        var model = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, 1, 8, 6, 6)
            .Initializer(TestTensors.Random("Wg", [8, 4, 3, 3], 1))
            .Initializer(TestTensors.Random("Wd", [8, 1, 3, 3], 2))
            .Node("Conv", ["x", "Wg"], ["h"], "grouped", "", Attr.Int("group", 2))
            .Node("Conv", ["h", "Wd"], ["y"], "depthwise", "", Attr.Int("group", 8))
            .Output("y", OnnxDataType.Float, 1, 8, 2, 2);
        var plan = new LowRankPass(FullRank).Preview(model.ToGraph());
        Assert.Empty(plan.Layers);
        Assert.Contains(plan.Skipped, s => s.Contains("grouped conv (group=2)", StringComparison.Ordinal));
        Assert.Contains(plan.Skipped, s => s.Contains("depthwise", StringComparison.Ordinal));
    }

    [Fact]
    public void EnergyPicksTheRankOfAKnownSpectrumAndSplitsOnlyWhenSmaller()
    {
        // W = U·diag(10, 5, 1, 0.01, ...)·Vᵀ: 99% of the energy lies in the first two values (100 + 25 of 126).
        double[] s = [10, 5, 1, 0.01, 0.01, 0.01];
        var w = MatrixTools.WithSpectrum(64, 6, s, seed: 4, cols: 48).Select(v => (float)v).ToArray();
        var model = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, "batch", 64)
            .Initializer(TestTensors.Float("W", [64, 48], w))
            .Node("MatMul", ["x", "W"], ["y"], name: "mm")
            .Output("y", OnnxDataType.Float, "batch", 48);
        var graph = model.ToGraph();
        var plan = new LowRankPass(new LowRankOptions { Energy = 0.99, MinElements = 0 }).Preview(graph);
        Assert.Equal(2, plan.Layers.Single().Ranks[0]);
        Assert.Equal(64 * 48, plan.Layers[0].ParamsBefore);
        Assert.Equal(2 * (64 + 48), plan.Layers[0].ParamsAfter);
        Assert.InRange(plan.Layers[0].RelativeError, 0.05, 0.12); // √(1 + 3e-4)/√126.0003 ≈ 0.089

        // Full rank has more parameters than the weight: not split by default.
        var none = new LowRankPass(new LowRankOptions { RankRatio = 1, MinElements = 0 }).Preview(graph);
        Assert.Empty(none.Layers);
        Assert.Contains("not fewer than", none.Skipped.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public void TargetParamsBoundsTheFactorSize()
    {
        var model = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, "batch", 100)
            .Initializer(TestTensors.Random("W", [100, 60], 9))
            .Node("MatMul", ["x", "W"], ["y"], name: "mm")
            .Output("y", OnnxDataType.Float, "batch", 60);
        var plan = new LowRankPass(new LowRankOptions { TargetParams = 0.5, MinElements = 0 }).Preview(model.ToGraph());
        var layer = plan.Layers.Single();
        Assert.True(layer.ParamsAfter <= 3000, $"{layer.ParamsAfter} params");
        Assert.Equal(18, layer.Ranks[0]); // floor(0.5·6000/160)
    }

    [Fact]
    public void CompressorVerifiesAndReportsLayers()
    {
        var model = TestModels.Mlp(inFeatures: 64, hidden: 96, outFeatures: 10);
        var dir = RealModels.TempDir("lowrank-compress");
        var result = ModelCompressor.Compress(model.ToBytes(), [new LowRankPass(new LowRankOptions { RankRatio = 1, RequireFewerParameters = false, MinElements = 0 })],
            new CompressionOptions { OutputPath = Path.Combine(dir, "mlp.lr.onnx") });
        Assert.Equal(2, result.Layers.Count);
        Assert.Contains("matrix rank", result.Layers[0].StorageAfter, StringComparison.Ordinal);
        Assert.True(result.Verification.MinCosine > 0.9999);
    }

    [Fact]
    public void LayerTimingTimesTheLayerAloneBothWays()
    {
        var model = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, "batch", 256)
            .Initializer(TestTensors.Random("W", [256, 256], 3))
            .Node("MatMul", ["x", "W"], ["y"], name: "mm")
            .Node("Relu", ["y"], ["z"], name: "relu")
            .Output("z", OnnxDataType.Float, "batch", 256);
        var path = Path.Combine(RealModels.TempDir("lowrank-timing"), "mm.onnx");
        File.WriteAllBytes(path, model.ToBytes());
        var layer = new LowRankPass(new LowRankOptions { RankRatio = 0.1 }).Preview(ModelGraph.Load(path)).Layers.Single();
        var timing = LayerTiming.Measure(path, layer, samples: 5);
        Assert.True(timing.OriginalMs > 0 && timing.SplitMs > 0, timing.ToString());
    }

    // ---- helpers -----------------------------------------------------------------------------

    internal static ModelBuilder ConvModel(params Onnx.Proto.AttributeProto[] attributes) =>
        TestModels.Model(13)
            .Input("x", OnnxDataType.Float, "batch", 8, "h", "w")
            .Initializer(TestTensors.Random("W", [12, 8, 3, 3], 21))
            .Initializer(TestTensors.Random("B", [12], 22))
            .Node("Conv", ["x", "W", "B"], ["y"], "conv", "", attributes)
            .OutputUnranked("y", OnnxDataType.Float);

    private static (byte[] Before, ModelGraph After, LowRankPlan Plan) Split(ModelBuilder model, LowRankOptions options)
    {
        var bytes = model.ToBytes();
        var graph = ModelGraph.FromBytes(bytes);
        var pass = new LowRankPass(options);
        var plan = pass.Preview(graph);
        PassManager.Run(graph, [pass]);
        return (bytes, graph, plan);
    }

    internal static Dictionary<string, NamedTensor> Inputs(string name, long[] shape, int seed) =>
        new() { [name] = new NamedTensor(TestTensors.RandomValues((int)shape.Aggregate(1L, (a, b) => a * b), seed), shape) };

    internal static float[] Run(byte[] model, Dictionary<string, NamedTensor> inputs)
    {
        using var runner = ModelRunner.Load(model);
        return runner.Run(inputs).Outputs[0].Data.ToArray();
    }

    internal static double RelativeError(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double err = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            err += (expected[i] - actual[i]) * (double)(expected[i] - actual[i]);
            norm += expected[i] * (double)expected[i];
        }
        return Math.Sqrt(err / norm);
    }

    internal static void AssertClose(float[] expected, float[] actual, double tolerance)
    {
        double e = RelativeError(expected, actual);
        Assert.True(e <= tolerance, $"relative output error {e:G3} > {tolerance}");
    }
}
