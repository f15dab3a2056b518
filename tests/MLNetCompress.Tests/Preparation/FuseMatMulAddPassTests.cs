using Microsoft.ML.OnnxRuntime;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Preparation;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Xunit.Abstractions;

namespace MLNetCompress.Tests.Preparation;

/// <summary>MatMul+Add → Gemm: same outputs as the original in ONNX Runtime, only where Gemm means the same thing, and
/// static QDQ then runs the layer as QGemm.</summary>
public class FuseMatMulAddPassTests(ITestOutputHelper output)
{
    /// <summary>x[N,16] → MatMul(W1[16,32]) → Add(b1[32]) → Relu → MatMul(W2[32,10]) → Add(b2[1,10]) → y, as tf2onnx writes a Dense MLP.</summary>
    private static ModelGraph MatMulAddMlp(bool declareInputShape = true)
    {
        var model = TestModels.Model(13);
        model = declareInputShape ? model.Input("x", OnnxDataType.Float, "batch", 16) : model.InputUnranked("x", OnnxDataType.Float);
        return model
            .Initializer(TestTensors.Random("W1", [16, 32], 1))
            .Initializer(TestTensors.Random("b1", [32], 2))
            .Initializer(TestTensors.Random("W2", [32, 10], 3))
            .Initializer(TestTensors.Random("b2", [1, 10], 4))
            .Node("MatMul", ["x", "W1"], ["m1"], name: "fc1")
            .Node("Add", ["m1", "b1"], ["a1"], name: "fc1_bias")
            .Node("Relu", ["a1"], ["r1"], name: "relu")
            .Node("MatMul", ["r1", "W2"], ["m2"], name: "fc2")
            .Node("Add", ["b2", "m2"], ["y"], name: "fc2_bias")
            .Output("y", OnnxDataType.Float, "batch", 10)
            .ToGraph();
    }

    [Fact]
    public void DenseMlp_BecomesGemms_WithTheOriginalOutputs()
    {
        var graph = MatMulAddMlp();
        var original = graph.ToBytes();
        var result = PreparationChecks.Run(graph, new FuseMatMulAddPass())[0];
        Assert.True(result.Modified);
        Assert.Equal(2, result.Changes.Count);
        var ops = graph.Main.Nodes.Select(n => n.OpType).ToList();
        Assert.Equal(new[] { "Gemm", "Relu", "Gemm" }, ops);
        var fc2 = graph.Main.Nodes[2];
        // The bias is found on either side of the Add; [1,10] becomes a [10] vector, the form QGemm takes.
        Assert.Equal(new[] { "r1", "W2" }, fc2.Input.Take(2).ToArray());
        var bias = graph.Main.Initializer(fc2.Input[2])!;
        Assert.Equal(new long[] { 10 }, bias.Dims.ToArray());
        Assert.Equal(TestTensors.RandomValues(10, 4), TensorData.ToFloatArray(bias));
        Assert.Null(graph.Main.Initializer("b2")); // the [1,10] original was read only by the Add
        Assert.Equal("y", fc2.Output.Single());
        // Gemm computes the same product and sum: equal to float rounding, over 32 random rows.
        var agreement = PreparationChecks.AssertEquivalent(original, graph.ToBytes(), 1e-5,
            new RandomFeed(ModelRunner.Load(original).Inputs, 32, 5).Batches(32).Select(b => b.Inputs).ToList());
        output.WriteLine(agreement.ToString());
    }

    [Fact]
    public void StaticQdq_AfterFusion_RunsQGemm()
    {
        var graph = MatMulAddMlp();
        using var runner = ModelRunner.Load(graph.ToBytes());
        var options = new QdqOptions { Calibration = new RandomFeed(runner.Inputs, 64, 1), KeepFloatWhereSlower = false };
        Onnx.Passes.PassManager.Run(graph, [new FuseMatMulAddPass(), new QdqQuantizationPass(options)]);
        var path = Path.Combine(RealModels.TempDir("fuse-matmul-add"), "mlp.optimized.onnx");
        using (ModelRunner.Load(graph.ToBytes(), new RuntimeOptions(GraphOptimizationLevel: GraphOptimizationLevel.ORT_ENABLE_EXTENDED, OptimizedModelPath: path))) { }
        var optimized = ModelGraph.Load(path).Main.Nodes.Select(n => n.OpType).ToList();
        output.WriteLine(string.Join(", ", optimized));
        Assert.Equal(2, optimized.Count(o => o == "QGemm"));
        Assert.DoesNotContain("MatMul", optimized);
        Assert.DoesNotContain("QLinearMatMul", optimized);
        Assert.DoesNotContain("QLinearAdd", optimized);
    }

    [Fact]
    public void PreparationDefault_FusesBeforeQuantization()
    {
        Assert.Contains(PreparationPasses.Default(), p => p is FuseMatMulAddPass);
        var graph = MatMulAddMlp();
        PreparationChecks.Run(graph, [.. PreparationPasses.Default()]);
        Assert.Equal(2, graph.Main.Nodes.Count(n => n.OpType == "Gemm"));
    }

    [Fact]
    public void UnknownRank_ThreeDimensional_OrSharedProduct_AreLeftAlone()
    {
        // No declared shape for x: its rank is unknown, so A may not be a matrix.
        var unknown = MatMulAddMlp(declareInputShape: false);
        var r = PreparationChecks.Run(unknown, new FuseMatMulAddPass())[0];
        Assert.Contains(r.Skipped, s => s.Contains("fc1", StringComparison.Ordinal) && s.Contains("2-D", StringComparison.Ordinal));
        // fc2's A is Relu(Add(MatMul(x))), no more provably 2-D than x.
        Assert.Equal(2, unknown.Main.Nodes.Count(n => n.OpType == "MatMul"));

        // [N,4,16] activations (a transformer's MatMul): Gemm would be wrong.
        var seq = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, "batch", 4, 16)
            .Initializer(TestTensors.Random("W", [16, 8], 1))
            .Initializer(TestTensors.Random("b", [8], 2))
            .Node("MatMul", ["x", "W"], ["m"], name: "proj")
            .Node("Add", ["m", "b"], ["y"], name: "bias")
            .Output("y", OnnxDataType.Float, "batch", 4, 8)
            .ToGraph();
        Assert.False(PreparationChecks.Run(seq, new FuseMatMulAddPass())[0].Modified);

        // The product is also a graph output: fusing would lose it.
        var shared = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, "batch", 16)
            .Initializer(TestTensors.Random("W", [16, 8], 1))
            .Initializer(TestTensors.Random("b", [8], 2))
            .Node("MatMul", ["x", "W"], ["m"], name: "proj")
            .Node("Add", ["m", "b"], ["y"], name: "bias")
            .Output("m", OnnxDataType.Float, "batch", 8)
            .Output("y", OnnxDataType.Float, "batch", 8)
            .ToGraph();
        Assert.False(PreparationChecks.Run(shared, new FuseMatMulAddPass())[0].Modified);

        // A bias of one value per row is not broadcastable along the last axis.
        var rows = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, 3, 16)
            .Initializer(TestTensors.Random("W", [16, 8], 1))
            .Initializer(TestTensors.Random("b", [3, 1], 2))
            .Node("MatMul", ["x", "W"], ["m"], name: "proj")
            .Node("Add", ["m", "b"], ["y"], name: "bias")
            .Output("y", OnnxDataType.Float, 3, 8)
            .ToGraph();
        var rr = PreparationChecks.Run(rows, new FuseMatMulAddPass())[0];
        Assert.False(rr.Modified);
        Assert.Contains(rr.Skipped, s => s.Contains("last axis", StringComparison.Ordinal));
    }
}
