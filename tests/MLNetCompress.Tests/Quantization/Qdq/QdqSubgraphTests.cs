using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.Quantization.Qdq;

/// <summary>Layers inside If/Loop/Scan bodies: static QDQ quantizes the main graph only, and says how many it left.</summary>
public class QdqSubgraphTests
{
    [Fact]
    public void LayersInIfBranches_StayFloat_AndTheReportCountsThem()
    {
        const OnnxDataType F = OnnxDataType.Float;
        var thenBranch = TestModels.Graph("then")
            .Constant("Wt", TestTensors.Random("Wt", [48, 16], 5))
            .Node("MatMul", ["h", "Wt"], ["yt"], name: "then_fc")
            .OutputUnranked("yt", F);
        var elseBranch = TestModels.Graph("else")
            .Node("MatMul", ["h", "We"], ["ye"], name: "else_fc")
            .OutputUnranked("ye", F);
        var graph = TestModels.Model(13).Input("x", F, "batch", 32).Input("c", F, 1)
            .Initializer(TestTensors.Random("W1", [48, 32], 1))
            .Initializer(TestTensors.Random("b1", [48], 2))
            .Initializer(TestTensors.Random("We", [48, 16], 6))
            .Initializer(TestTensors.Float("zero", [1], 0f))
            .Node("Gemm", ["x", "W1", "b1"], ["g"], "fc1", "", Attr.Int("transB", 1))
            .Node("Relu", ["g"], ["h"], name: "relu")
            .Node("Greater", ["c", "zero"], ["cond"])
            .If("cond", ["y"], thenBranch, elseBranch)
            .Output("y", F, "batch", 16)
            .ToGraph();
        using var runner = ModelRunner.Load(graph.ToBytes());
        var result = PassManager.Run(graph, [new QdqQuantizationPass(new QdqOptions { Calibration = new RandomFeed(runner.Inputs, 16, 1), KeepFloatWhereSlower = false })])[0];

        Assert.True(result.Modified); // fc1 in the main graph is quantized
        var line = Assert.Single(result.Skipped, s => s.Contains("If/Loop/Scan", StringComparison.Ordinal));
        Assert.StartsWith("2 layers inside If/Loop/Scan bodies left in float", line, StringComparison.Ordinal);
        Assert.Contains("then_fc", line, StringComparison.Ordinal);
        Assert.Contains("else_fc", line, StringComparison.Ordinal);
        Assert.All(graph.Scopes.Where(s => s.Parent is not null).SelectMany(s => s.Nodes), n => Assert.NotEqual("DequantizeLinear", n.OpType));
    }
}
