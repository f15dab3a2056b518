using MLNetCompress.Onnx;
using MLNetCompress.Preparation;
using MLNetCompress.Testing;
using Xunit.Abstractions;
using static MLNetCompress.Tests.Preparation.PreparationChecks;

namespace MLNetCompress.Tests.Preparation;

public class ConstantFoldingPassTests(ITestOutputHelper output)
{
    [Fact]
    public void ConstantChain_Folds_DynamicShapeChain_Stays()
    {
        // w is stored [2,3]^T as [3,2] and reshaped + transposed at run time: a constant chain.
        // Shape(x) → Gather → Unsqueeze → Concat → Reshape(x) depends on the input: it must stay.
        var builder = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, "batch", 6)
            .Initializer(TestTensors.Random("w0", [3, 2], 1))
            .ConstantInts("shape", 2, 3)
            .Node("Reshape", ["w0", "shape"], ["w1"])
            .Node("Transpose", ["w1"], ["w2"], Attr.Ints("perm", 1, 0))
            .ConstantFloat("two", 2f)
            .Node("Mul", ["w2", "two"], ["w"])
            .Node("Shape", ["x"], ["xs"])
            .ConstantInt("zero", 0)
            .Node("Gather", ["xs", "zero"], ["b"], Attr.Int("axis", 0))
            .Node("Unsqueeze", ["b", "axes"], ["b1"])
            .Initializer(TestTensors.Int64("axes", [1], 0))
            .ConstantInts("tail", 2, 3)
            .Node("Concat", ["b1", "tail"], ["newshape"], Attr.Int("axis", 0))
            .Node("Reshape", ["x", "newshape"], ["x3"])
            .Node("MatMul", ["x3", "w"], ["y"])
            .Output("y", OnnxDataType.Float, "batch", 2, 2);
        // (the Unsqueeze reads an initializer declared after it: the builder's order is not the graph's problem)
        var graph = builder.ToGraph();
        var result = Run(graph, new ConstantFoldingPass())[0];
        Assert.Equal(3, result.Changes.Count);
        Assert.Equal(["Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "MatMul"], graph.Main.Nodes.Where(n => n.OpType != "Constant").Select(n => n.OpType));
        var w = graph.Main.Initializer("w");
        Assert.NotNull(w);
        Assert.Equal([3L, 2L], w.Dims);
        Assert.Null(graph.Main.Initializer("w0")); // read only by the folded nodes: removed
        output.WriteLine(string.Join("\n", result.Changes));
        AssertEquivalent(builder.ToBytes(), graph.ToBytes(), 0);
    }

    [Fact]
    public void LeavesRandomQdqAndLowBitStorage_AndHugeValues()
    {
        var builder = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, 4)
            .Initializer(TestTensors.Int8("q", [4], 1, -2, 3, -4))
            .Initializer(TestTensors.Float("scale", [], 0.5f))
            .Node("DequantizeLinear", ["q", "scale"], ["wq"])
            .Initializer(TestTensors.UInt8("idx", [4], 0, 1, 1, 0))
            .Node("Cast", ["idx"], ["idx32"], Attr.Int("to", (long)OnnxDataType.Int32))
            .Initializer(TestTensors.Float("codebook", [2], -1f, 1f))
            .Node("Gather", ["codebook", "idx32"], ["wc"], Attr.Int("axis", 0))
            .Node("RandomUniformLike", ["codebook4"], ["noise"])
            .Initializer(TestTensors.Float("codebook4", [4], 1, 2, 3, 4))
            .Node("Mul", ["noise", "x"], ["xn"])
            .ConstantInts("big", 1024, 1024, 8)
            .Node("ConstantOfShape", ["big"], ["zeros"])
            .Node("ReduceSum", ["zeros"], ["zsum"], Attr.Int("keepdims", 0))
            .Node("Add", ["wq", "wc"], ["w"])
            .Node("Mul", ["x", "w"], ["y0"])
            .Node("Add", ["y0", "zsum"], ["y1"])
            .Node("Sub", ["y1", "xn"], ["y2"])
            .Node("Sub", ["y2", "xn"], ["y"])
            .Output("y", OnnxDataType.Float, 4);
        var graph = builder.ToGraph();
        var result = Run(graph, new ConstantFoldingPass(new ConstantFoldingOptions { MaxEvaluationBytes = 1 << 20 }))[0];
        output.WriteLine(string.Join("\n", result.Skipped));
        Assert.Equal(1, Count(graph, "DequantizeLinear"));
        Assert.Equal(1, Count(graph, "Cast"));
        Assert.Equal(1, Count(graph, "RandomUniformLike"));
        Assert.Equal(1, Count(graph, "ConstantOfShape")); // 8M elements: over the limit, so it and its ReduceSum stay
        Assert.Contains(result.Skipped, s => s.Contains("QDQ", StringComparison.Ordinal));
        Assert.Contains(result.Skipped, s => s.Contains("low-bit", StringComparison.Ordinal));
        Assert.Contains(result.Skipped, s => s.Contains("random", StringComparison.Ordinal));
        Assert.Contains(result.Skipped, s => s.Contains("MaxEvaluationBytes", StringComparison.Ordinal));
    }

    [Fact]
    public void HugeIntermediate_ReducedToASmallValue_FoldsToTheSmallValue()
    {
        var builder = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, 1)
            .ConstantInts("shape", 300, 300)
            .Node("ConstantOfShape", ["shape"], ["ones"], Attr.Tensor("value", TestTensors.Float("v", [1], 1f)))
            .Node("ReduceSum", ["ones"], ["n"], Attr.Int("keepdims", 0))
            .Node("Add", ["x", "n"], ["y"])
            .Output("y", OnnxDataType.Float, 1);
        var graph = builder.ToGraph();
        var result = Run(graph, new ConstantFoldingPass(new ConstantFoldingOptions { MaxOutputBytes = 1000 }))[0];
        Assert.Equal(["Add"], graph.Main.Nodes.Select(n => n.OpType));
        Assert.Equal(90000f, TensorData.ToFloatArray(graph.Main.Initializer("n")!)[0]);
        Assert.Equal(2, result.Changes.Count);
    }

    [Fact]
    public void MiniLm_FoldsOnlyTrulyConstantNodes_OutputsIdentical()
    {
        var original = File.ReadAllBytes(RealModels.MiniLm);
        var graph = ModelGraph.FromBytes(original);
        int constantsBefore = Count(graph, "Constant"), shapesBefore = Count(graph, "Shape"), nodesBefore = graph.Main.NodeCount;
        var result = Run(graph, new ConstantFoldingPass())[0];
        output.WriteLine($"MiniLM: {nodesBefore} -> {graph.Main.NodeCount} nodes, Constant {constantsBefore} -> {Count(graph, "Constant")}, {result.Changes.Count} folded, {result.Skipped.Count} skipped");
        foreach (var line in result.Changes.Take(10)) output.WriteLine(line);
        Assert.Equal(155, constantsBefore);
        Assert.Equal(shapesBefore, Count(graph, "Shape")); // Shape of dynamic inputs is never constant
        Assert.True(graph.Main.NodeCount <= nodesBefore);
        output.WriteLine(AssertEquivalent(original, graph.ToBytes(), 1e-6).ToString());
    }
}
