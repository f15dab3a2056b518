using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization;
using MLNetCompress.Testing;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Quantization;

/// <summary>The int8 weight storage pass on small models built in code, one situation each.</summary>
public class Int8WeightStoragePassTests
{
    private const OnnxDataType F = OnnxDataType.Float;

    private static PassResult RunPass(ModelGraph graph, Int8WeightStorageOptions? options = null) =>
        PassManager.Run(graph, [new Int8WeightStoragePass(options)])[0];

    private static Dictionary<string, NamedTensor> Input(string name, long[] shape, int seed = 3)
    {
        int n = (int)shape.Aggregate(1L, (a, b) => a * b);
        return new() { [name] = new NamedTensor(Gaussian(n, seed), shape) };
    }

    /// <summary>Runs both models in ONNX Runtime and checks every output agrees (cosine and a relative bound).</summary>
    private static void AssertSameOutputs(byte[] before, ModelGraph after, IReadOnlyDictionary<string, NamedTensor> inputs)
    {
        var a = Run(before, inputs);
        var b = Run(after.ToBytes(), inputs);
        Assert.Equal(a.Length, b.Length);
        for (int k = 0; k < a.Length; k++)
        {
            Assert.True(Cosine(a[k], b[k]) > 0.999, $"output {k}: cosine {Cosine(a[k], b[k])}");
            float scale = a[k].Max(MathF.Abs);
            for (int i = 0; i < a[k].Length; i++)
                Assert.True(MathF.Abs(a[k][i] - b[k][i]) <= 0.02f * scale, $"output {k}[{i}]: {a[k][i]} vs {b[k][i]}");
        }
    }

    private static ModelBuilder ConvModel(long opset = 13, long ir = 8) =>
        TestModels.Model(opset, ir)
            .Input("x", F, 1, 8, 6, 6)
            .Initializer(TestTensors.Random("W", [16, 8, 3, 3], 1))
            .Initializer(TestTensors.Random("B", [16], 2))
            .Node("Conv", ["x", "W", "B"], ["y"], Attr.Ints("pads", 1, 1, 1, 1))
            .Output("y", F, 1, 16, 6, 6);

    [Fact]
    public void Conv_StoresInt8AndScales_AndComputesTheWeightBackBeforeTheConv()
    {
        var bytes = ConvModel().ToBytes();
        var graph = ModelGraph.FromBytes(bytes);
        var result = RunPass(graph);

        Assert.True(result.Modified);
        var main = graph.Main;
        Assert.Null(main.Initializer("W"));
        Assert.NotNull(main.Initializer("B")); // biases stay float
        var q = main.Initializer("W_int8")!;
        Assert.Equal((int)OnnxDataType.Int8, q.DataType);
        Assert.Equal([16L, 8, 3, 3], q.Dims);
        Assert.Equal([16L, 1, 1, 1], main.Initializer("W_scale")!.Dims);
        Assert.Equal(["Cast", "Mul", "Conv"], main.Nodes.Select(n => n.OpType));
        Assert.Equal("W", main.Nodes[1].Output[0]);

        var w = TestTensors.RandomValues(16 * 8 * 9, 1);
        AssertMatchesReference(w, [16, 8, 3, 3], Stored(graph, "W"));
        AssertSameOutputs(bytes, graph, Input("x", [1, 8, 6, 6]));
        Assert.Empty(result.Skipped);
        Assert.Contains(result.Changes, c => c.StartsWith("W (Conv in main): float[16,8,3,3] -> int8 per-channel (axis 0) + 16 float scales", StringComparison.Ordinal));
    }

    public static TheoryData<string, int> AxisCases => new()
    {
        { "ConvTranspose", 1 },
        { "GemmTransB0", 1 },
        { "GemmTransB1", 0 },
        { "MatMul", 1 },
        { "MatMulConstantA", 0 },
    };

    [Theory]
    [MemberData(nameof(AxisCases))]
    public void EachOp_GetsItsOutputChannelAxis_AndTheSameOutputs(string op, int axis)
    {
        var (builder, input, shape, dims) = op switch
        {
            "ConvTranspose" => (TestModels.Model().Input("x", F, 1, 8, 5, 5)
                .Initializer(TestTensors.Random("W", [8, 16, 3, 3], 1))
                .Node("ConvTranspose", ["x", "W"], ["y"]).Output("y", F, 1, 16, 7, 7), "x", new long[] { 1, 8, 5, 5 }, new long[] { 8, 16, 3, 3 }),
            "GemmTransB0" => (TestModels.Model().Input("x", F, 4, 32)
                .Initializer(TestTensors.Random("W", [32, 48], 1))
                .Node("Gemm", ["x", "W"], ["y"]).Output("y", F, 4, 48), "x", [4, 32], [32, 48]),
            "GemmTransB1" => (TestModels.Model().Input("x", F, 4, 32)
                .Initializer(TestTensors.Random("W", [48, 32], 1))
                .Node("Gemm", ["x", "W"], ["y"], Attr.Int("transB", 1)).Output("y", F, 4, 48), "x", [4, 32], [48, 32]),
            "MatMul" => (TestModels.Model().Input("x", F, 2, 4, 32)
                .Initializer(TestTensors.Random("W", [32, 48], 1))
                .Node("MatMul", ["x", "W"], ["y"]).Output("y", F, 2, 4, 48), "x", [2, 4, 32], [32, 48]),
            _ => (TestModels.Model().Input("x", F, 32, 4)
                .Initializer(TestTensors.Random("W", [48, 32], 1))
                .Node("MatMul", ["W", "x"], ["y"]).Output("y", F, 48, 4), "x", [32, 4], [48, 32]),
        };
        var bytes = builder.ToBytes();
        var graph = ModelGraph.FromBytes(bytes);
        Assert.True(RunPass(graph).Modified);

        var stored = Stored(graph, "W");
        Assert.Equal(axis, AxisOf(stored.ScaleDims));
        Assert.Equal(dims.Length, stored.ScaleDims.Length);
        AssertMatchesReference(TestTensors.RandomValues((int)dims.Aggregate(1L, (a, b) => a * b), 1), dims, stored);
        AssertSameOutputs(bytes, graph, Input(input, shape));
    }

    [Fact]
    public void PerTensor_UsesOneScalarScale()
    {
        var graph = ConvModel().ToGraph();
        RunPass(graph, new Int8WeightStorageOptions { PerChannel = false });
        var stored = Stored(graph, "W");
        Assert.Empty(stored.ScaleDims);
        AssertMatchesReference(TestTensors.RandomValues(16 * 8 * 9, 1), [16, 8, 3, 3], stored);
    }

    [Fact]
    public void SharedWeight_IsStoredOnce()
    {
        var bytes = TestModels.Model().Input("x", F, 4, 32)
            .Initializer(TestTensors.Random("W", [32, 32], 1))
            .Node("MatMul", ["x", "W"], ["h"])
            .Node("Relu", ["h"], ["r"])
            .Node("MatMul", ["r", "W"], ["y"])
            .Output("y", F, 4, 32).ToBytes();
        var graph = ModelGraph.FromBytes(bytes);
        var result = RunPass(graph);

        Assert.Single(result.Changes, c => c.StartsWith("W ", StringComparison.Ordinal));
        Assert.Equal(["Cast", "Mul", "MatMul", "Relu", "MatMul"], graph.Main.Nodes.Select(n => n.OpType));
        Assert.Single(graph.Main.Initializers, t => t.DataType == (int)OnnxDataType.Int8);
        AssertSameOutputs(bytes, graph, Input("x", [4, 32]));
    }

    [Fact]
    public void WeightsInsideIfBranches_ConstantNodesAndOuterInitializers_AreStored()
    {
        // then: MatMul with a Constant-node weight of its own; else: MatMul with a main-graph initializer.
        var thenBranch = TestModels.Graph("then")
            .Constant("Wt", TestTensors.Random("Wt", [32, 48], 5))
            .Node("MatMul", ["x", "Wt"], ["yt"])
            .OutputUnranked("yt", F);
        var elseBranch = TestModels.Graph("else")
            .Node("MatMul", ["x", "Wm"], ["ye"])
            .OutputUnranked("ye", F);
        var bytes = TestModels.Model().Input("x", F, 4, 32).Input("c", F, 1)
            .Initializer(TestTensors.Random("Wm", [32, 48], 6))
            .Initializer(TestTensors.Float("zero", [1], 0f))
            .Node("Greater", ["c", "zero"], ["cond"])
            .If("cond", ["y"], thenBranch, elseBranch)
            .Output("y", F, 4, 48).ToBytes();
        var graph = ModelGraph.FromBytes(bytes);
        var result = RunPass(graph);

        Assert.Equal(2, result.Changes.Count(c => c.Contains(" -> int8", StringComparison.Ordinal)));
        var then = graph.Scopes.Single(s => s.Path.EndsWith("then_branch", StringComparison.Ordinal));
        // The Constant-node weight stays in Constant nodes, inside its branch.
        Assert.Equal(["Constant", "Constant", "Cast", "Mul", "MatMul"], then.Nodes.Select(n => n.OpType));
        Assert.Equal((int)OnnxDataType.Int8, then.ConstantValue("Wt_int8")!.DataType);
        // The outer weight is computed back in the main graph, before the If that reads it.
        Assert.Equal(["Greater", "Cast", "Mul", "If"], graph.Main.Nodes.Select(n => n.OpType));
        AssertMatchesReference(TestTensors.RandomValues(32 * 48, 5), [32, 48], Stored(graph, "Wt"));
        AssertMatchesReference(TestTensors.RandomValues(32 * 48, 6), [32, 48], Stored(graph, "Wm"));

        foreach (float c in new[] { 1f, -1f })
        {
            var inputs = Input("x", [4, 32]);
            inputs["c"] = new NamedTensor([c], [1]);
            AssertSameOutputs(bytes, graph, inputs);
        }
    }

    [Theory]
    [InlineData(7)]
    [InlineData(8)]
    public void Ir3Model_WithInitializersAsInputs_LosesTheInputEntryAndRunsInOrt(long opset)
    {
        var bytes = ConvModel(opset, ir: 3).InitializersAsInputs().ToBytes();
        var graph = ModelGraph.FromBytes(bytes);
        var signature = graph.Signature.Inputs.Concat(graph.Signature.Outputs).Select(v => $"{v.Name} {v}").ToList();
        Assert.True(RunPass(graph).Modified);

        // W's input entry went with it; the int8 values and scales are initializers only (ONNX Runtime accepts that in IR 3).
        Assert.Equal(["x", "B"], graph.Main.Proto.Input.Select(i => i.Name));
        Assert.Equal(signature, graph.Signature.Inputs.Concat(graph.Signature.Outputs).Select(v => $"{v.Name} {v}"));
        AssertSameOutputs(bytes, graph, Input("x", [1, 8, 6, 6]));
    }

    [Fact]
    public void Opset6_IsLeftAloneWithAReason()
    {
        var graph = ConvModel(opset: 6, ir: 3).ToGraph();
        var result = RunPass(graph);
        Assert.False(result.Modified);
        Assert.Contains("opset 6", Assert.Single(result.Skipped), StringComparison.Ordinal);
        Assert.NotNull(graph.Main.Initializer("W"));
    }

    [Fact]
    public void Float16WeightBehindACast_IsStoredAsInt8_CastBack_AndFoldsAtLoad()
    {
        var values = TestTensors.RandomValues(32 * 48, 7);
        var half = values.Select(v => (Half)v).ToArray();
        var raw = new byte[half.Length * 2];
        for (int i = 0; i < half.Length; i++) BitConverter.TryWriteBytes(raw.AsSpan(i * 2), half[i]);
        var model = TestModels.Model().Input("x", F, 4, 32)
            .Initializer(TestTensors.Raw("W16", [32, 48], OnnxDataType.Float16, raw))
            .Node("Cast", ["W16"], ["W"], Attr.Int("to", (long)F))
            .Node("MatMul", ["x", "W"], ["y"])
            .Output("y", F, 4, 48);
        var bytes = model.ToBytes();
        var graph = ModelGraph.FromBytes(bytes);
        var result = RunPass(graph);

        Assert.Contains(result.Changes, c => c.StartsWith("W16 (MatMul in main): float16[32,48] -> int8 per-channel (axis 1)", StringComparison.Ordinal));
        // int8 → float, × scale, → float16 under the weight's own name, then the model's own Cast.
        Assert.Equal(["Cast", "Mul", "Cast", "Cast", "MatMul"], graph.Main.Nodes.Select(n => n.OpType));
        Assert.Equal((long)OnnxDataType.Float16, graph.Main.Producer("W16")!.Attribute.Single(a => a.Name == "to").I);
        AssertMatchesReference(half.Select(h => (float)h).ToArray(), [32, 48], Stored(graph, "W16"));
        AssertSameOutputs(bytes, graph, Input("x", [4, 32]));

        var path = Path.Combine(RealModels.TempDir("fp16"), "fp16.int8.onnx");
        graph.Save(path);
        var optimized = OptimizedByOrt(path);
        AssertFolded(optimized, "MatMul");
        Assert.Equal(["MatMul"], optimized.Main.Nodes.Select(n => n.OpType));
    }

    [Fact]
    public void WeightsItCannotOrShouldNotStore_AreSkippedWithReasons()
    {
        var nan = TestTensors.RandomValues(32 * 48, 8);
        nan[17] = float.NaN;
        var graph = TestModels.Model().Input("x", F, 4, 32).Input("xi", OnnxDataType.Int32, 4, 32)
            .Initializer(TestTensors.Random("Small", [32, 16], 1))          // 512 elements
            .Initializer(TestTensors.Float("NaNs", [32, 48], nan))
            .Initializer(TestTensors.Random("Exposed", [32, 48], 2))        // also a graph output
            .Initializer(TestTensors.Int32("Ints", [32, 48], new int[32 * 48]))
            .Initializer(TestTensors.Int8("Wq", [32, 48], new sbyte[32 * 48]))
            .Initializer(TestTensors.Float("Wq_scale", [], 0.1f))
            .Node("MatMul", ["x", "Small"], ["a"])
            .Node("MatMul", ["x", "NaNs"], ["b"])
            .Node("MatMul", ["x", "Exposed"], ["c"])
            .Node("MatMul", ["xi", "Ints"], ["d"])
            .Node("DequantizeLinear", ["Wq", "Wq_scale"], ["Wdq"])
            .Node("MatMul", ["x", "Wdq"], ["e"])
            .Output("a", F, 4, 16).Output("b", F, 4, 48).Output("c", F, 4, 48)
            .Output("d", OnnxDataType.Int32, 4, 48).Output("e", F, 4, 48).Output("Exposed", F, 32, 48)
            .ToGraph();
        var result = RunPass(graph);

        Assert.False(result.Modified);
        string Reason(string name) => Assert.Single(result.Skipped, s => s.StartsWith(name + " ", StringComparison.Ordinal));
        Assert.Contains("512 elements, below MinElements 1024", Reason("Small"), StringComparison.Ordinal);
        Assert.Contains("NaN", Reason("NaNs"), StringComparison.Ordinal);
        Assert.Contains("graph output", Reason("Exposed"), StringComparison.Ordinal);
        Assert.Contains("int32", Reason("Ints"), StringComparison.Ordinal);
        Assert.Contains("DequantizeLinear", Reason("Wdq"), StringComparison.Ordinal);

        // A smaller threshold takes the small one.
        Assert.True(RunPass(graph, new Int8WeightStorageOptions { MinElements = 0 }).Modified);
        Assert.Null(graph.Main.Initializer("Small"));
    }

    [Fact]
    public void OverridableInitializer_OfAnIr4Model_IsLeftAlone()
    {
        var graph = ConvModel().Input("W", F, 16, 8, 3, 3).ToGraph();
        var result = RunPass(graph);
        Assert.False(result.Modified);
        Assert.Contains("graph input", Assert.Single(result.Skipped), StringComparison.Ordinal);
    }

    [Fact]
    public void Preview_PlansWithoutTouchingTheGraph_AndTheRunReportsLayers()
    {
        var graph = ConvModel().ToGraph();
        var before = graph.ToBytes();
        var pass = new Int8WeightStoragePass();

        var plan = pass.Preview(graph);
        Assert.Equal(before, graph.ToBytes());
        var w = Assert.Single(plan.Weights);
        Assert.Equal(("W", "Conv", "main", 0, 16), (w.Name, w.OpType, w.Graph, w.Axis, w.ScaleCount));
        Assert.Equal(16 * 8 * 9 * 4, w.BytesBefore);
        Assert.Equal(16 * 8 * 9 + 16 * 4, w.BytesAfter);

        var layers = new List<LayerChange>();
        var progress = new List<PassProgress>();
        var result = pass.Run(graph, new PassContext { Progress = new SyncProgress<PassProgress>(progress.Add) }, layers);
        Assert.True(result.Modified);
        var layer = Assert.Single(layers);
        Assert.Equal("W", layer.Weight);
        Assert.Equal([16L, 8, 3, 3], layer.Shape);
        Assert.Equal("float", layer.StorageBefore);
        Assert.Equal("int8 per-channel (axis 0) + 16 float scales", layer.StorageAfter);
        Assert.Equal(w.MaxAbsError, layer.MaxAbsError, 6);
        Assert.True(layer.MaxAbsError > 0 && layer.MaxAbsError <= 1.0 / 127 / 2 * 1.0001);
        Assert.Contains(progress, p => p.Step == "quantize" && p.Done == 1 && p.Total == 1);
        Assert.Contains(progress, p => p.Step == "rewrite" && p.Done == 1 && p.Total == 1);
        Assert.Null(GraphInvariants.FindViolation(graph));
    }

    [Fact]
    public void Options_AreValidated()
    {
        Assert.Throws<ArgumentException>(() => new Int8WeightStoragePass(new() { Ops = new HashSet<string> { "Conv", "LSTM" } }));
        Assert.Throws<ArgumentException>(() => new Int8WeightStoragePass(new() { MinElements = -1 }));
        Assert.Contains("Gather", Int8WeightStorageOptions.SupportedOps);
        Assert.DoesNotContain("Gather", Int8WeightStorageOptions.DefaultOps);
    }

    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
