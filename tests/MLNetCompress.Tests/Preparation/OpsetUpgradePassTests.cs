using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Preparation;
using MLNetCompress.Testing;
using Xunit.Abstractions;
using static MLNetCompress.Tests.Preparation.PreparationChecks;

namespace MLNetCompress.Tests.Preparation;

public class OpsetUpgradePassTests(ITestOutputHelper output)
{
    /// <summary>Upgrades a built model, checks opset and IR, and compares both in ONNX Runtime (or with a reference model).</summary>
    private ModelGraph Upgrade(ModelBuilder builder, long target, byte[]? reference = null)
    {
        var graph = builder.ToGraph();
        var result = Run(graph, new OpsetUpgradePass(target))[0];
        foreach (var line in result.Changes) output.WriteLine(line);
        Assert.Equal(target, graph.OnnxOpset);
        Assert.True(graph.IrVersion >= OpsetChangelog.MinIrVersion(target));
        var agreement = AssertEquivalent(reference ?? builder.ToBytes(), graph.ToBytes(), 1e-6);
        output.WriteLine($"-> opset {target}: {agreement}");
        return graph;
    }

    private static ModelBuilder Model(long opset) => TestModels.Model(opset, OpsetChangelog.MinIrVersion(opset));

    [Theory]
    [InlineData(13)]
    [InlineData(17)]
    [InlineData(21)]
    public void ResNet18_UpgradedFromOpset8_OutputsEqual(long target)
    {
        var original = File.ReadAllBytes(RealModels.ResNet18);
        var graph = ModelGraph.FromBytes(original);
        var result = Run(graph, new OpsetUpgradePass(target))[0];
        Assert.Equal(target, graph.OnnxOpset);
        Assert.Equal(OpsetChangelog.MinIrVersion(target), graph.IrVersion);
        Assert.Single(graph.Signature.Inputs);
        var agreement = AssertEquivalent(original, graph.ToBytes(), 1e-6, ResNetInputs(1));
        output.WriteLine($"ResNet18 8 -> {target}: {result.Changes.Count} changes ({string.Join("; ", result.Changes.Where(c => !c.Contains("dropped spatial", StringComparison.Ordinal)))}); {agreement}");
    }

    [Theory]
    [InlineData(17)]
    [InlineData(21)]
    public void MiniLm_UpgradedFromOpset13_OutputsEqual(long target)
    {
        var original = File.ReadAllBytes(RealModels.MiniLm);
        var graph = ModelGraph.FromBytes(original);
        var result = Run(graph, new OpsetUpgradePass(target))[0];
        Assert.Equal(target, graph.OnnxOpset);
        var agreement = AssertEquivalent(original, graph.ToBytes(), 1e-6);
        output.WriteLine($"MiniLM 13 -> {target}: {result.Changes.Count} changes; {agreement}");
    }

    [Theory]
    [InlineData("Softmax", 1)]
    [InlineData("LogSoftmax", 1)]
    [InlineData("Hardmax", 1)]
    [InlineData("Softmax", 2)]
    public void SoftmaxFamily_CoercedTo2D_KeepsItsMeaningAt13(string op, long axis)
    {
        // [2,3,4] with axis 1: before 13 the op ran over the 12 trailing values together.
        var builder = Model(11).Input("x", OnnxDataType.Float, 2, 3, 4)
            .Node(op, ["x"], ["y"], Attr.Int("axis", axis))
            .Output("y", OnnxDataType.Float, 2, 3, 4);
        var graph = Upgrade(builder, 13);
        Assert.Equal(axis == 2 ? 1 : 4, graph.Main.NodeCount); // the last axis needs no Flatten/Reshape
    }

    [Fact]
    public void SqueezeUnsqueezeReduceSumSplit_AttributesBecomeInputsAt13()
    {
        var builder = Model(11).Input("x", OnnxDataType.Float, 2, 1, 6)
            .Node("Squeeze", ["x"], ["s"], Attr.Ints("axes", 1))
            .Node("Split", ["s"], ["a", "b"], Attr.Int("axis", 1), Attr.Ints("split", 2, 4))
            .Node("ReduceSum", ["b"], ["r"], Attr.Ints("axes", 1), Attr.Int("keepdims", 1))
            .Node("Unsqueeze", ["a"], ["u"], Attr.Ints("axes", 0))
            .Node("Mul", ["r", "a"], ["y"])
            .Output("y", OnnxDataType.Float, 2, 2)
            .Output("u", OnnxDataType.Float, 1, 2, 2);
        var graph = Upgrade(builder, 13);
        Assert.All(graph.Main.Nodes.Where(n => n.OpType != "Mul"), n => Assert.DoesNotContain(n.Attribute, a => a.Name is "axes" or "split"));
    }

    [Fact]
    public void EqualSplitAndReduceMean_At18()
    {
        var builder = Model(13).Input("x", OnnxDataType.Float, 2, 6)
            .Node("Split", ["x"], ["a", "b", "c"], Attr.Int("axis", 1))
            .Node("ReduceMean", ["b"], ["m"], Attr.Ints("axes", 1))
            .Node("ReduceMax", ["c"], ["n"], Attr.Ints("axes", 0, 1), Attr.Int("keepdims", 0))
            .Node("Add", ["a", "m"], ["s"])
            .Node("Add", ["s", "n"], ["y"])
            .Output("y", OnnxDataType.Float, 2, 2);
        Upgrade(builder, 18);
    }

    [Fact]
    public void PadClipDropout_At11And12()
    {
        var builder = Model(10).Input("x", OnnxDataType.Float, 2, 3)
            .Node("Pad", ["x"], ["p"], Attr.Ints("pads", 0, 1, 1, 2), Attr.Float("value", 1.5f))
            .Node("Clip", ["p"], ["c"], Attr.Float("min", -0.25f), Attr.Float("max", 0.5f))
            .Node("Dropout", ["c"], ["y"], Attr.Float("ratio", 0.2f))
            .Output("y", OnnxDataType.Float, 3, 6);
        var graph = Upgrade(builder, 12);
        Assert.Equal(3, graph.Main.Nodes.Single(n => n.OpType == "Clip").Input.Count);
        Assert.Equal(2, graph.Main.Nodes.Single(n => n.OpType == "Dropout").Input.Count);
    }

    [Fact]
    public void SliceAndTopK_AttributesBecomeInputsAt10()
    {
        var builder = Model(9).Input("x", OnnxDataType.Float, 4, 6)
            .Node("Slice", ["x"], ["s"], Attr.Ints("starts", 1, 0), Attr.Ints("ends", 3, 5), Attr.Ints("axes", 0, 1))
            .Node("TopK", ["s"], ["v", "i"], Attr.Int("k", 2))
            .Output("v", OnnxDataType.Float, 2, 2);
        Upgrade(builder, 11);
    }

    [Theory]
    [InlineData("nearest", 10)]
    [InlineData("nearest", 11)]
    [InlineData("linear", 13)]
    public void Upsample_BecomesResize(string mode, long target)
    {
        var builder = Model(9).Input("x", OnnxDataType.Float, 1, 2, 3, 3)
            .Initializer(TestTensors.Float("scales", [4], 1, 1, 2, 3))
            .Node("Upsample", ["x", "scales"], ["y"], Attr.String("mode", mode))
            .Output("y", OnnxDataType.Float, 1, 2, 6, 9);
        var graph = Upgrade(builder, target);
        Assert.Equal("Resize", Assert.Single(graph.Main.Nodes).OpType);
    }

    [Fact]
    public void Upsample7_ScalesAttribute_BecomesResize()
    {
        var builder = Model(7).Input("x", OnnxDataType.Float, 1, 1, 2, 2)
            .Node("Upsample", ["x"], ["y"], Attr.Floats("scales", 1, 1, 2, 2))
            .Output("y", OnnxDataType.Float, 1, 1, 4, 4);
        Upgrade(builder, 11);
    }

    [Theory]
    [InlineData("nearest", 2f)]
    [InlineData("nearest", 0.5f)]
    [InlineData("linear", 0.5f)]
    public void Resize10_AsymmetricCoordinates_KeptAt11And13(string mode, float scale)
    {
        foreach (long target in new long[] { 11, 13 })
        {
            var builder = Model(10).Input("x", OnnxDataType.Float, 1, 1, 4, 6)
                .Initializer(TestTensors.Float("scales", [4], 1, 1, scale, scale))
                .Node("Resize", ["x", "scales"], ["y"], Attr.String("mode", mode))
                .OutputUnranked("y", OnnxDataType.Float);
            Upgrade(builder, target);
        }
    }

    [Fact]
    public void BatchNorm7_SpatialAndIsTest_Dropped()
    {
        var builder = Model(7).Input("x", OnnxDataType.Float, 1, 2, 3, 3)
            .Initializer(TestTensors.Float("g", [2], 1, 2)).Initializer(TestTensors.Float("b", [2], 0, 1))
            .Initializer(TestTensors.Float("m", [2], 0.5f, -1)).Initializer(TestTensors.Float("v", [2], 1, 4))
            .Node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], Attr.Int("spatial", 1))
            .Output("y", OnnxDataType.Float, 1, 2, 3, 3);
        var graph = Upgrade(builder, 15);
        Assert.Empty(graph.Main.Nodes[0].Attribute);
    }

    [Fact]
    public void Reshape4_ShapeAttribute_BecomesInput()
    {
        var builder = Model(4).Input("x", OnnxDataType.Float, 2, 6)
            .Node("Reshape", ["x"], ["y"], Attr.Ints("shape", 3, 4))
            .Output("y", OnnxDataType.Float, 3, 4);
        var reference = Model(7).Input("x", OnnxDataType.Float, 2, 6)
            .Initializer(TestTensors.Int64("s", [2], 3, 4))
            .Node("Reshape", ["x", "s"], ["y"])
            .Output("y", OnnxDataType.Float, 3, 4).ToBytes();
        Upgrade(builder, 13, reference);
    }

    [Fact]
    public void Opset6_BroadcastAxisAndGemmBroadcast_BecomeNumpyBroadcasting()
    {
        // ONNX Runtime has no opset-6 Add/Gemm kernels: the upgraded model is compared with the same computation
        // written at opset 7 (B reshaped to [3,1] by hand).
        var builder = Model(6).Input("x", OnnxDataType.Float, 2, 3, 4)
            .Initializer(TestTensors.Float("b", [3], 1, 2, 3))
            .Initializer(TestTensors.Random("w", [4, 5], 2))
            .Initializer(TestTensors.Float("c", [5], 1, 1, 1, 1, 1))
            .Node("Add", ["x", "b"], ["s"], Attr.Int("broadcast", 1), Attr.Int("axis", 1))
            .Node("Reshape", ["s", "shape"], ["s2"])
            .Initializer(TestTensors.Int64("shape", [2], 6, 4))
            .Node("Gemm", ["s2", "w", "c"], ["y"], Attr.Int("broadcast", 1))
            .Output("y", OnnxDataType.Float, 6, 5);
        var reference = Model(7).Input("x", OnnxDataType.Float, 2, 3, 4)
            .Initializer(TestTensors.Float("b", [3, 1], 1, 2, 3))
            .Initializer(TestTensors.Random("w", [4, 5], 2))
            .Initializer(TestTensors.Float("c", [5], 1, 1, 1, 1, 1))
            .Initializer(TestTensors.Int64("shape", [2], 6, 4))
            .Node("Add", ["x", "b"], ["s"])
            .Node("Reshape", ["s", "shape"], ["s2"])
            .Node("Gemm", ["s2", "w", "c"], ["y"])
            .Output("y", OnnxDataType.Float, 6, 5).ToBytes();
        var graph = Upgrade(builder, 9, reference);
        Assert.DoesNotContain(graph.Main.Nodes.SelectMany(n => n.Attribute), a => a.Name is "broadcast" or "axis");
    }

    [Fact]
    public void ChangedOpWithoutRewrite_IsRefused_NamingOpAndVersion()
    {
        // GroupNormalization's scale and bias went from per-group to per-channel at opset 21.
        var graph = Model(18).Input("x", OnnxDataType.Float, 1, 4, 2)
            .Initializer(TestTensors.Float("s", [2], 1, 1)).Initializer(TestTensors.Float("b", [2], 0, 0))
            .Node("GroupNormalization", ["x", "s", "b"], ["y"], Attr.Int("num_groups", 2))
            .Output("y", OnnxDataType.Float, 1, 4, 2).ToGraph();
        var before = graph.ToBytes();
        var e = Assert.Throws<OpsetUpgradeException>(() => Run(graph, new OpsetUpgradePass(21)));
        Assert.Equal("GroupNormalization", e.Op);
        Assert.Equal(21, e.Version);
        Assert.Contains("GroupNormalization", e.Message);
        Assert.Contains("opset 21", e.Message);
        Assert.Equal(before, graph.ToBytes()); // refused before any edit
        Assert.Equal(18, graph.OnnxOpset);
        Run(graph, new OpsetUpgradePass(20)); // below the change it is fine

        var unknown = Model(13).Input("x", OnnxDataType.Float, 2)
            .Node("FancyOp", ["x"], ["y"]).Output("y", OnnxDataType.Float, 2).ToGraph();
        var e2 = Assert.Throws<OpsetUpgradeException>(() => Run(unknown, new OpsetUpgradePass(17)));
        Assert.Contains("'FancyOp'", e2.Message);

        var lower = Model(13).Input("x", OnnxDataType.Float, 2).Node("Relu", ["x"], ["y"]).Output("y", OnnxDataType.Float, 2).ToGraph();
        Assert.Contains("lower", Assert.Throws<OpsetUpgradeException>(() => Run(lower, new OpsetUpgradePass(11))).Message);
        Assert.Throws<ArgumentException>(() => new OpsetUpgradePass(27));
    }
}
