using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Preparation;
using MLNetCompress.Testing;
using Xunit.Abstractions;
using static MLNetCompress.Tests.Preparation.PreparationChecks;

namespace MLNetCompress.Tests.Preparation;

public class FoldBatchNormPassTests(ITestOutputHelper output)
{
    /// <summary>BatchNormalization parameters for <paramref name="c"/> channels, with variances away from zero.</summary>
    private static ModelBuilder WithBn(ModelBuilder m, int c, int seed)
    {
        var variance = TestTensors.RandomValues(c, seed + 3).Select(v => v * v + 0.1f).ToArray();
        return m.Initializer(TestTensors.Random("gamma", [c], seed))
            .Initializer(TestTensors.Random("beta", [c], seed + 1))
            .Initializer(TestTensors.Random("mean", [c], seed + 2))
            .Initializer(TestTensors.Float("var", [c], variance));
    }

    private static ModelBuilder ConvBn(long opset, bool bias, params AttributeProto[] bnAttributes)
    {
        var m = TestModels.Model(opset, opset <= 8 ? 3 : 8)
            .Input("x", OnnxDataType.Float, 2, 3, 8, 8)
            .Initializer(TestTensors.Random("w", [4, 3, 3, 3], 1));
        if (bias) m.Initializer(TestTensors.Random("b", [4], 2));
        return WithBn(m, 4, 10)
            .Node("Conv", bias ? ["x", "w", "b"] : ["x", "w"], ["c"], Attr.Ints("pads", 1, 1, 1, 1))
            .Node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["y"], bnAttributes)
            .Node("Relu", ["y"], ["z"])
            .Output("z", OnnxDataType.Float, 2, 4, 8, 8);
    }

    [Theory]
    [InlineData(7, true)]
    [InlineData(8, false)]
    [InlineData(9, true)]
    [InlineData(13, false)]
    [InlineData(15, true)]
    public void Conv_FoldsAndMatchesOrt(long opset, bool bias)
    {
        var attrs = new List<AttributeProto> { Attr.Float("epsilon", 1e-3f) };
        if (opset < 9) attrs.Add(Attr.Int("spatial", 1));
        var builder = ConvBn(opset, bias, [.. attrs]);
        if (opset <= 8) builder.InitializersAsInputs();
        var graph = builder.ToGraph();
        var result = Run(graph, new FoldBatchNormPass())[0];
        Assert.True(result.Modified, string.Join("; ", result.Skipped));
        Assert.Single(result.Changes);
        Assert.Equal(0, Count(graph, "BatchNormalization"));
        Assert.Equal(3, graph.Main.Nodes[0].Input.Count);
        // The old weights are gone (IR 3: from the inputs too); the signature is unchanged.
        Assert.Null(graph.Main.Initializer("w"));
        Assert.Single(graph.Signature.Inputs);
        output.WriteLine($"opset {opset}: {AssertEquivalent(builder.ToBytes(), graph.ToBytes())}");
    }

    [Fact]
    public void Opset6_IsTestAndConsumedInputs_Fold_LikeOpset7()
    {
        // ONNX Runtime has no BatchNormalization-6 kernel: the folded opset-6 model (Conv only) is compared with
        // the same model at opset 7.
        var opset6 = ConvBn(6, true, Attr.Int("is_test", 1), Attr.Ints("consumed_inputs", 0, 0, 0, 1, 1), Attr.Float("epsilon", 1e-5f)).InitializersAsInputs();
        var graph = opset6.ToGraph();
        var result = Run(graph, new FoldBatchNormPass())[0];
        Assert.True(result.Modified, string.Join("; ", result.Skipped));
        Assert.Equal(0, Count(graph, "BatchNormalization"));
        var reference = ConvBn(7, true, Attr.Float("epsilon", 1e-5f)).InitializersAsInputs().ToBytes();
        output.WriteLine(AssertEquivalent(reference, graph.ToBytes()).ToString());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void ConvTranspose_FoldsPerOutputChannel(long group)
    {
        // Weight [C_in, C_out/group, k, k]: 4 input channels, 6 output channels.
        var builder = WithBn(TestModels.Model(13)
                .Input("x", OnnxDataType.Float, 1, 4, 5, 5)
                .Initializer(TestTensors.Random("w", [4, 6 / group, 3, 3], 5)), 6, 20)
            .Node("ConvTranspose", ["x", "w"], ["c"], Attr.Int("group", group), Attr.Ints("strides", 2, 2))
            .Node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["y"])
            .Output("y", OnnxDataType.Float, 1, 6, 11, 11);
        var graph = builder.ToGraph();
        Assert.True(Run(graph, new FoldBatchNormPass())[0].Modified);
        Assert.Equal(["ConvTranspose"], graph.Main.Nodes.Select(n => n.OpType));
        output.WriteLine($"group {group}: {AssertEquivalent(builder.ToBytes(), graph.ToBytes())}");
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    public void Gemm_FoldsIntoColumnsAndBias(bool transB, bool withC)
    {
        var m = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, 3, 5)
            .Initializer(TestTensors.Random("w", transB ? [7, 5] : [5, 7], 7));
        if (withC) m.Initializer(TestTensors.Random("c0", [7], 8));
        var builder = WithBn(m, 7, 30)
            .Node("Gemm", withC ? ["x", "w", "c0"] : ["x", "w"], ["g"], Attr.Int("transB", transB ? 1 : 0), Attr.Float("alpha", 0.5f), Attr.Float("beta", 2f))
            .Node("BatchNormalization", ["g", "gamma", "beta", "mean", "var"], ["y"])
            .Output("y", OnnxDataType.Float, 3, 7);
        var graph = builder.ToGraph();
        Assert.True(Run(graph, new FoldBatchNormPass())[0].Modified);
        Assert.Equal(["Gemm"], graph.Main.Nodes.Select(n => n.OpType));
        output.WriteLine($"transB {transB}, C {withC}: {AssertEquivalent(builder.ToBytes(), graph.ToBytes())}");
    }

    [Fact]
    public void LeavesWhatCannotFold_WithReasons()
    {
        // (1) the Conv output is read twice; (2) training_mode = 1; (3) spatial = 0 after a Conv (opset 8).
        var shared = WithBn(TestModels.Model(13).Input("x", OnnxDataType.Float, 1, 3, 4, 4)
                .Initializer(TestTensors.Random("w", [4, 3, 1, 1], 1)), 4, 1)
            .Node("Conv", ["x", "w"], ["c"])
            .Node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["y"])
            .Node("Add", ["y", "c"], ["z"])
            .Output("z", OnnxDataType.Float, 1, 4, 4, 4).ToGraph();
        var r = Run(shared, new FoldBatchNormPass())[0];
        Assert.False(r.Modified);
        Assert.Contains("also read elsewhere", Assert.Single(r.Skipped));

        var training = ConvBn(15, true, Attr.Int("training_mode", 1)).ToGraph();
        Assert.Contains("training mode", Assert.Single(Run(training, new FoldBatchNormPass())[0].Skipped));

        var spatial0 = ConvBn(8, true, Attr.Int("spatial", 0)).InitializersAsInputs().ToGraph();
        Assert.Contains("spatial = 0", Assert.Single(Run(spatial0, new FoldBatchNormPass())[0].Skipped));
    }

    [Fact]
    public void ResNet18_All22BatchNormsFold_OutputsMatch()
    {
        var original = File.ReadAllBytes(RealModels.ResNet18);
        var graph = ModelGraph.FromBytes(original);
        int bnBefore = Count(graph, "BatchNormalization"), nodesBefore = graph.Main.NodeCount;
        var result = Run(graph, new FoldBatchNormPass())[0];
        Assert.Equal(22, bnBefore);
        Assert.Equal(22, result.Changes.Count);
        Assert.Empty(result.Skipped);
        Assert.Equal(0, Count(graph, "BatchNormalization"));
        var agreement = AssertEquivalent(original, graph.ToBytes(), 1e-4, ResNetInputs(2));
        output.WriteLine($"ResNet18: BatchNormalization {bnBefore} -> 0, nodes {nodesBefore} -> {graph.Main.NodeCount}; {agreement}");
    }
}
