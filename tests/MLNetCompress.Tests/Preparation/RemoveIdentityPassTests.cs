using MLNetCompress.Onnx;
using MLNetCompress.Preparation;
using MLNetCompress.Testing;
using Xunit.Abstractions;
using static MLNetCompress.Tests.Preparation.PreparationChecks;

namespace MLNetCompress.Tests.Preparation;

public class RemoveIdentityPassTests(ITestOutputHelper output)
{
    [Fact]
    public void Opset13_IdentityAndDropoutChain_Removed_OutputNameKept()
    {
        var builder = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, 2, 4)
            .Initializer(TestTensors.Float("ratio", [], 0.3f))
            .Node("Relu", ["x"], ["r"])
            .Node("Identity", ["r"], ["i1"])
            .Node("Dropout", ["i1", "ratio"], ["d", "mask"])
            .Node("Sigmoid", ["d"], ["s"])
            .Node("Identity", ["s"], ["y"])
            .Output("y", OnnxDataType.Float, 2, 4);
        var graph = builder.ToGraph();
        var result = Run(graph, new RemoveIdentityPass())[0];
        Assert.Equal(3, result.Changes.Count);
        Assert.Equal(["Relu", "Sigmoid"], graph.Main.Nodes.Select(n => n.OpType));
        Assert.Equal("y", graph.Main.Nodes[1].Output[0]); // the Sigmoid now produces the graph output itself
        output.WriteLine(AssertEquivalent(builder.ToBytes(), graph.ToBytes(), 0).ToString());
    }

    [Theory]
    [InlineData(7)]
    [InlineData(10)]
    [InlineData(12)]
    public void OlderDropouts_WithRatioAttribute_Removed(long opset)
    {
        var dropout = opset < 12 ? new[] { Attr.Float("ratio", 0.5f) } : [];
        var builder = TestModels.Model(opset)
            .Input("x", OnnxDataType.Float, 3, 2)
            .Node("Dropout", ["x"], ["d"], dropout)
            .Node("Neg", ["d"], ["y"])
            .Output("y", OnnxDataType.Float, 3, 2);
        var graph = builder.ToGraph();
        Assert.True(Run(graph, new RemoveIdentityPass())[0].Modified);
        Assert.Equal(["Neg"], graph.Main.Nodes.Select(n => n.OpType));
        Assert.Equal("x", graph.Main.Nodes[0].Input[0]);
        AssertEquivalent(builder.ToBytes(), graph.ToBytes(), 0);
    }

    [Fact]
    public void KeepsWhatIsNotAnIdentity_OrCannotGo()
    {
        var graph = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, 3)
            .Initializer(TestTensors.Bool("train", true))
            .Node("Identity", ["x"], ["copy"])                    // graph input straight to a graph output
            .Node("Dropout", ["x"], ["d", "mask"])                // its mask is read
            .Node("Cast", ["mask"], ["maskf"], Attr.Int("to", 1))
            .Node("Dropout", ["x", "", "train"], ["t"])           // training mode
            .Node("Add", ["d", "maskf"], ["s0"])
            .Node("Add", ["s0", "t"], ["y"])
            .Output("copy", OnnxDataType.Float, 3)
            .Output("y", OnnxDataType.Float, 3)
            .ToGraph();
        var result = Run(graph, new RemoveIdentityPass())[0];
        Assert.False(result.Modified);
        Assert.Equal(3, result.Skipped.Count);
        Assert.Contains(result.Skipped, s => s.Contains("graph input", StringComparison.Ordinal));
        Assert.Contains(result.Skipped, s => s.Contains("mask output", StringComparison.Ordinal));
        Assert.Contains(result.Skipped, s => s.Contains("training_mode is true", StringComparison.Ordinal));
    }

    [Fact]
    public void IdentityReadInsideASubgraph_IsRewiredThere()
    {
        var then = TestModels.Graph("then").Node("Neg", ["i"], ["t"]).Output("t", OnnxDataType.Float, 2);
        var els = TestModels.Graph("else").Node("Abs", ["i"], ["e"]).Output("e", OnnxDataType.Float, 2);
        var builder = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, 2)
            .Input("c", OnnxDataType.Bool)
            .Node("Identity", ["x"], ["i"])
            .If("c", ["y"], then, els)
            .Output("y", OnnxDataType.Float, 2);
        var graph = builder.ToGraph();
        Assert.True(Run(graph, new RemoveIdentityPass())[0].Modified);
        Assert.Equal(["If"], graph.Main.Nodes.Select(n => n.OpType));
        using var a = MLNetCompress.Runtime.ModelRunner.Load(graph.ToBytes()); // loads: the branches read x now
    }
}
