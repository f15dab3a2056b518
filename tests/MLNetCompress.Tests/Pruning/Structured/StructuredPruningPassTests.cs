using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Pruning.Structured;
using MLNetCompress.Testing;
using static MLNetCompress.Tests.Pruning.PruningChecks;

namespace MLNetCompress.Tests.Pruning.Structured;

public class StructuredPruningPassTests
{
    private const OnnxDataType F = OnnxDataType.Float;

    private static readonly StructuredPruningOptions Half = new() { Fraction = 0.5, KeepAtLeast = 1 };

    internal static (ModelGraph Graph, StructuredPruningPlan Plan, PassResult Result) Prune(byte[] model, StructuredPruningOptions options)
    {
        var graph = ModelGraph.FromBytes(model);
        var pass = new StructuredPruningPass(options);
        var plan = pass.Preview(graph);
        var result = PassManager.Run(graph, [pass]).Single();
        return (graph, plan, result);
    }

    private static Onnx.Proto.AttributeProto[] Conv3x3() => [Attr.Ints("kernel_shape", 3, 3), Attr.Ints("pads", 1, 1, 1, 1)];

    /// <summary>Zeroes, along <paramref name="axis"/>, the entries <c>index·hw .. index·hw+hw−1</c> for each index: computed here, not by the pass.</summary>
    private static float[] ZeroAlong(float[] values, long[] dims, int axis, IEnumerable<int> indices, int hw = 1)
    {
        var r = (float[])values.Clone();
        long inner = 1;
        for (int d = axis + 1; d < dims.Length; d++) inner *= dims[d];
        var zero = new HashSet<long>(indices.SelectMany(i => Enumerable.Range(i * hw, hw).Select(x => (long)x)));
        for (long i = 0; i < r.Length; i++)
            if (zero.Contains(i / inner % dims[axis])) r[i] = 0;
        return r;
    }

    private static byte[] ConvBnReluConv(int seed = 3) => TestModels.Model()
        .Input("x", F, 1, 3, 8, 8)
        .Initializer(TestTensors.Random("W1", [8, 3, 3, 3], seed))
        .Initializer(TestTensors.Random("B1", [8], seed + 1))
        .Initializer(TestTensors.Float("gamma", [8], TestTensors.RandomValues(8, seed + 2).Select(v => 0.5f + Math.Abs(v)).ToArray()))
        .Initializer(TestTensors.Random("beta", [8], seed + 3))
        .Initializer(TestTensors.Random("mean", [8], seed + 4))
        .Initializer(TestTensors.Float("var", [8], TestTensors.RandomValues(8, seed + 5).Select(v => 0.5f + Math.Abs(v)).ToArray()))
        .Initializer(TestTensors.Random("W2", [4, 8, 3, 3], seed + 6))
        .Node("Conv", ["x", "W1", "B1"], ["c1"], "conv1", "", Conv3x3())
        .Node("BatchNormalization", ["c1", "gamma", "beta", "mean", "var"], ["n1"], "bn1")
        .Node("Relu", ["n1"], ["r1"], "relu1")
        .Node("Conv", ["r1", "W2"], ["y"], "conv2", "", Conv3x3())
        .Output("y", F, 1, 4, 8, 8)
        .ToBytes();

    [Fact]
    public void ConvBnReluConv_PrunedModelEqualsTheOriginalWithTheRemovedChannelsZeroedAtTheConsumer()
    {
        var model = ConvBnReluConv();
        var (graph, plan, result) = Prune(model, Half);
        var group = Assert.Single(plan.Groups);
        Assert.Equal(8, group.ChannelsBefore);
        Assert.Equal(4, group.ChannelsAfter);
        Assert.Equal(4, group.Removed.Count);
        Assert.True(result.Modified);

        var after = Weights(graph.ToBytes());
        Assert.Equal([4L, 3, 3, 3], after["W1"].Dims);
        Assert.Equal([4L], after["B1"].Dims);
        foreach (var p in new[] { "gamma", "beta", "mean", "var" }) Assert.Equal([4L], after[p].Dims);
        Assert.Equal([4L, 4, 3, 3], after["W2"].Dims);

        // Independent: in the original, a channel conv2 does not read contributes nothing.
        var w2 = Weights(model)["W2"];
        var reference = WithWeights(model, new Dictionary<string, float[]> { ["W2"] = ZeroAlong(w2.Values, w2.Dims, 1, group.Removed) });
        AssertSameOrtOutputs(reference, graph.ToBytes(), "x", [1, 3, 8, 8], tolerance: 1e-4f);
    }

    [Fact]
    public void L1_RemovesTheAllZeroFilters_AndTheOutputDoesNotChange()
    {
        // Channels 1, 4, 6 of conv1 are all-zero filters with zero bias, and the BatchNormalization maps 0 to 0 there.
        var w1 = TestTensors.RandomValues(8 * 27, 5);
        var dead = new[] { 1, 4, 6 };
        foreach (int c in dead) Array.Clear(w1, c * 27, 27);
        var b1 = TestTensors.RandomValues(8, 6);
        var beta = TestTensors.RandomValues(8, 7);
        var mean = TestTensors.RandomValues(8, 8);
        foreach (int c in dead) { b1[c] = 0; beta[c] = 0; mean[c] = 0; }
        var model = ModelGraph.FromBytes(ConvBnReluConv()).ToBytes();
        model = WithWeights(model, new Dictionary<string, float[]> { ["W1"] = w1, ["B1"] = b1, ["beta"] = beta, ["mean"] = mean });

        var (graph, plan, _) = Prune(model, new StructuredPruningOptions { Fraction = 3.0 / 8, KeepAtLeast = 1 });
        Assert.Equal(dead, Assert.Single(plan.Groups).Removed);
        AssertSameOrtOutputs(model, graph.ToBytes(), "x", [1, 3, 8, 8], tolerance: 1e-5f);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void ConvFlattenGemm_RemovesABlockOfHWRowsPerChannel(int transB)
    {
        // 6 channels of 4×4 flattened into 96 features; each removed channel takes 16 rows (columns with transB) of B.
        long[] bDims = transB == 0 ? [96, 5] : [5, 96];
        var model = TestModels.Model()
            .Input("x", F, 2, 2, 4, 4)
            .Initializer(TestTensors.Random("W", [6, 2, 3, 3], 11))
            .Initializer(TestTensors.Random("Bc", [6], 12))
            .Initializer(TestTensors.Random("B", bDims, 13))
            .Initializer(TestTensors.Random("C", [5], 14))
            .Node("Conv", ["x", "W", "Bc"], ["c"], "conv", "", Conv3x3())
            .Node("Relu", ["c"], ["r"], "relu")
            .Node("Flatten", ["r"], ["f"], "flatten", "", Attr.Int("axis", 1))
            .Node("Gemm", ["f", "B", "C"], ["y"], "fc", "", Attr.Int("transB", transB))
            .Output("y", F, 2, 5)
            .ToBytes();
        var (graph, plan, _) = Prune(model, Half);
        Assert.True(1 == plan.Groups.Count, string.Join("\n", plan.Skipped));
        var group = plan.Groups[0];
        Assert.Equal(3, group.Removed.Count);
        var after = Weights(graph.ToBytes());
        Assert.Equal(transB == 0 ? [48L, 5] : [5L, 48], after["B"].Dims);
        var b = Weights(model)["B"];
        var reference = WithWeights(model, new Dictionary<string, float[]> { ["B"] = ZeroAlong(b.Values, b.Dims, transB, group.Removed, hw: 16) });
        AssertSameOrtOutputs(reference, graph.ToBytes(), "x", [2, 2, 4, 4], tolerance: 1e-4f);
    }

    [Fact]
    public void Concat_CutsEachInputsChannelsAtItsOffsetInTheConsumer()
    {
        var model = TestModels.Model()
            .Input("x", F, 1, 3, 6, 6)
            .Initializer(TestTensors.Random("Wa", [4, 3, 3, 3], 21))
            .Initializer(TestTensors.Random("Wb", [6, 3, 3, 3], 22))
            .Initializer(TestTensors.Random("Wc", [3, 10, 3, 3], 23))
            .Node("Conv", ["x", "Wa"], ["a"], "conv_a", "", Conv3x3())
            .Node("Conv", ["x", "Wb"], ["b"], "conv_b", "", Conv3x3())
            .Node("Concat", ["a", "b"], ["ab"], "concat", "", Attr.Int("axis", 1))
            .Node("Relu", ["ab"], ["r"], "relu")
            .Node("Conv", ["r", "Wc"], ["y"], "conv_c", "", Conv3x3())
            .Output("y", F, 1, 3, 6, 6)
            .ToBytes();
        var (graph, plan, _) = Prune(model, Half);
        Assert.True(2 == plan.Groups.Count, string.Join("\n", plan.Skipped));
        var a = plan.Groups.Single(g => g.Layers.Single() == "conv_a");
        var b = plan.Groups.Single(g => g.Layers.Single() == "conv_b");
        Assert.Equal(2, a.Removed.Count);
        Assert.Equal(3, b.Removed.Count);
        var after = Weights(graph.ToBytes());
        Assert.Equal([3L, 5, 3, 3], after["Wc"].Dims);
        var wc = Weights(model)["Wc"];
        var zeroed = ZeroAlong(wc.Values, wc.Dims, 1, a.Removed.Concat(b.Removed.Select(c => 4 + c)));
        AssertSameOrtOutputs(WithWeights(model, new Dictionary<string, float[]> { ["Wc"] = zeroed }), graph.ToBytes(), "x", [1, 3, 6, 6], tolerance: 1e-4f);
    }

    [Fact]
    public void ResidualAdd_PrunesTheTiedConvsJointly_AndTheAllZeroChannelsGoWithoutChangingTheOutput()
    {
        // a = relu(convA(x)); b = bn(convB(a)); c = relu(a + b); y = convC(c). convA and convB write the same channels.
        var wa = TestTensors.RandomValues(8 * 27, 31);
        var wb = TestTensors.RandomValues(8 * 72, 32);
        var dead = new[] { 0, 5 };
        foreach (int c in dead) { Array.Clear(wa, c * 27, 27); Array.Clear(wb, c * 72, 72); }
        var beta = TestTensors.RandomValues(8, 33);
        var mean = TestTensors.RandomValues(8, 34);
        foreach (int c in dead) { beta[c] = 0; mean[c] = 0; }
        var model = TestModels.Model()
            .Input("x", F, 1, 3, 6, 6)
            .Initializer(TestTensors.Float("Wa", [8, 3, 3, 3], wa))
            .Initializer(TestTensors.Float("Wb", [8, 8, 3, 3], wb))
            .Initializer(TestTensors.Float("gamma", [8], Enumerable.Repeat(1.5f, 8).ToArray()))
            .Initializer(TestTensors.Float("beta", [8], beta))
            .Initializer(TestTensors.Float("mean", [8], mean))
            .Initializer(TestTensors.Float("var", [8], Enumerable.Repeat(2f, 8).ToArray()))
            .Initializer(TestTensors.Random("Wc", [4, 8, 3, 3], 35))
            .Node("Conv", ["x", "Wa"], ["ca"], "conv_a", "", Conv3x3())
            .Node("Relu", ["ca"], ["a"], "relu_a")
            .Node("Conv", ["a", "Wb"], ["cb"], "conv_b", "", Conv3x3())
            .Node("BatchNormalization", ["cb", "gamma", "beta", "mean", "var"], ["b"], "bn_b")
            .Node("Add", ["a", "b"], ["s"], "residual")
            .Node("Relu", ["s"], ["c"], "relu_c")
            .Node("Conv", ["c", "Wc"], ["y"], "conv_c", "", Conv3x3())
            .Output("y", F, 1, 4, 6, 6)
            .ToBytes();
        var (graph, plan, _) = Prune(model, new StructuredPruningOptions { Fraction = 0.25, KeepAtLeast = 1 });
        var group = Assert.Single(plan.Groups);
        Assert.Equal(["conv_a", "conv_b"], group.Layers.Order());
        Assert.Equal(dead, group.Removed);
        var after = Weights(graph.ToBytes());
        Assert.Equal([6L, 3, 3, 3], after["Wa"].Dims);
        Assert.Equal([6L, 6, 3, 3], after["Wb"].Dims); // its input and output channels are the same channels
        Assert.Equal([4L, 6, 3, 3], after["Wc"].Dims);
        AssertSameOrtOutputs(model, graph.ToBytes(), "x", [1, 3, 6, 6], tolerance: 1e-4f);
    }

    [Fact]
    public void DepthwiseConv_ItsChannelsFollow_AndItsGroupCountShrinks()
    {
        var model = TestModels.Model()
            .Input("x", F, 1, 3, 6, 6)
            .Initializer(TestTensors.Random("W1", [8, 3, 3, 3], 41))
            .Initializer(TestTensors.Random("Wd", [8, 1, 3, 3], 42))
            .Initializer(TestTensors.Random("Bd", [8], 43))
            .Initializer(TestTensors.Random("W2", [4, 8, 1, 1], 44))
            .Node("Conv", ["x", "W1"], ["c1"], "conv1", "", Conv3x3())
            .Node("Relu", ["c1"], ["r1"], "relu1")
            .Node("Conv", ["r1", "Wd", "Bd"], ["d"], "dw", "", [.. Conv3x3(), Attr.Int("group", 8)])
            .Node("Relu", ["d"], ["r2"], "relu2")
            .Node("Conv", ["r2", "W2"], ["y"], "conv2", "", Attr.Ints("kernel_shape", 1, 1))
            .Output("y", F, 1, 4, 6, 6)
            .ToBytes();
        var (graph, plan, _) = Prune(model, Half);
        var group = Assert.Single(plan.Groups);
        var after = Weights(graph.ToBytes());
        Assert.Equal([4L, 1, 3, 3], after["Wd"].Dims);
        Assert.Equal([4L], after["Bd"].Dims);
        Assert.Equal(4, GraphEdits.Int(graph.Main.Nodes.Single(n => n.Name == "dw"), "group", 1));
        var w2 = Weights(model)["W2"];
        var reference = WithWeights(model, new Dictionary<string, float[]> { ["W2"] = ZeroAlong(w2.Values, w2.Dims, 1, group.Removed) });
        AssertSameOrtOutputs(reference, graph.ToBytes(), "x", [1, 3, 6, 6], tolerance: 1e-4f);
    }

    [Fact]
    public void UnsafeLayers_AreSkippedWithTheReason_AndLeftAsTheyAre()
    {
        // conv_out feeds the graph output; conv_t feeds a Transpose (moves channels); conv_r a Reshape to [0, 2, -1].
        var model = TestModels.Model()
            .Input("x", F, 1, 3, 4, 4)
            .Initializer(TestTensors.Random("Wo", [8, 3, 3, 3], 51))
            .Initializer(TestTensors.Random("Wt", [8, 3, 3, 3], 52))
            .Initializer(TestTensors.Random("Wr", [8, 3, 3, 3], 53))
            .Initializer(TestTensors.Int64("shape", [3], 0, 2, -1))
            .Node("Conv", ["x", "Wo"], ["out"], "conv_out", "", Conv3x3())
            .Node("Conv", ["x", "Wt"], ["t0"], "conv_t", "", Conv3x3())
            .Node("Transpose", ["t0"], ["t"], "transpose", "", Attr.Ints("perm", 0, 2, 3, 1))
            .Node("Conv", ["x", "Wr"], ["r0"], "conv_r", "", Conv3x3())
            .Node("Reshape", ["r0", "shape"], ["r"], "reshape")
            .Output("out", F, 1, 8, 4, 4)
            .Output("t", F, 1, 4, 4, 8)
            .Output("r", F, 1, 2, 64)
            .ToBytes();
        var (graph, plan, result) = Prune(model, Half);
        Assert.Empty(plan.Groups);
        Assert.False(result.Modified);
        Assert.Equal(3, result.Skipped.Count);
        Assert.Contains(result.Skipped, s => s.Contains("conv_out") && s.Contains("graph output"));
        Assert.Contains(result.Skipped, s => s.Contains("conv_t") && s.Contains("Transpose"));
        Assert.Contains(result.Skipped, s => s.Contains("conv_r") && s.Contains("Reshape"));
        Assert.Equal(ModelGraph.FromBytes(model).ToBytes(), graph.ToBytes());
    }

    [Fact]
    public void Exclusions_KeepAtLeast_AndRounding()
    {
        var model = ConvBnReluConv();
        var (_, excluded, _) = Prune(model, Half with { Exclude = new HashSet<string> { "conv1" } });
        Assert.Empty(excluded.Groups);
        Assert.Contains(excluded.Skipped, s => s.Contains("excluded"));

        var (_, floor, _) = Prune(model, new StructuredPruningOptions { Fraction = 0.9, KeepAtLeast = 3 });
        Assert.Equal(3, floor.Groups.Single().ChannelsAfter);

        // 8 × (1 − 0.3) = 5.6 → nearest multiple of 4 is 4.
        var (_, rounded, _) = Prune(model, new StructuredPruningOptions { Fraction = 0.3, KeepAtLeast = 1, RoundTo = 4 });
        Assert.Equal(4, rounded.Groups.Single().ChannelsAfter);
    }

    [Fact]
    public void Options_AreValidated()
    {
        Assert.Throws<ArgumentException>(() => new StructuredPruningPass(new StructuredPruningOptions { Fraction = 1 }));
        Assert.Throws<ArgumentException>(() => new StructuredPruningPass(new StructuredPruningOptions { Fraction = 0.3, Criterion = ChannelCriterion.Activation }));
        Assert.Throws<ArgumentException>(() => new StructuredPruningPass(new StructuredPruningOptions { Fraction = 0.3, Reconstruct = true }));
        Assert.Throws<ArgumentException>(() => new StructuredPruningPass(new StructuredPruningOptions { Fraction = 0.3, RoundTo = 0 }));
    }
}
