using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Onnx.Tests.Graph;
using MLNetCompress.Testing;

namespace MLNetCompress.Onnx.Tests.Passes;

/// <summary>The invariants catch a pass that breaks the graph, and the error names the pass and the problem.</summary>
public class PassManagerTests
{
    /// <summary>A pass made of a lambda, for tests.</summary>
    private sealed class LambdaPass(string name, Action<ModelGraph> edit) : IGraphPass
    {
        public string Name => name;
        public int Runs { get; private set; }

        public PassResult Run(ModelGraph graph, PassContext context)
        {
            Runs++;
            edit(graph);
            return new PassResult(name, true, [name], []);
        }
    }

    private static NodeProto NodeNamed(ModelGraph g, string name) => g.Main.Nodes.Single(n => n.Name == name);

    private static PassFailedException RunBroken(ModelGraph g, string passName, Action<ModelGraph> edit)
    {
        var good = new LambdaPass("harmless", _ => { });
        var broken = new LambdaPass(passName, edit);
        var after = new LambdaPass("after", _ => { });
        var e = Assert.Throws<PassFailedException>(() => PassManager.Run(g, [good, broken, after]));
        Assert.Equal(passName, e.PassName);
        Assert.StartsWith($"pass '{passName}' produced an invalid graph: ", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(1, good.Runs);
        Assert.Equal(0, after.Runs); // nothing runs on a broken graph
        return e;
    }

    [Fact]
    public void SoundPasses_RunInOrder_AndReturnTheirResults()
    {
        var g = TestModels.Mlp().ToGraph();
        var order = new List<string>();
        var results = PassManager.Run(g, [
            new LambdaPass("first", _ => order.Add("first")),
            new LambdaPass("insert-identity", graph =>
            {
                order.Add("insert-identity");
                var fc2 = NodeNamed(graph, "fc2");
                var id = new NodeProto { OpType = "Identity", Name = graph.UniqueName("id"), Input = { "h2" }, Output = { graph.UniqueName("h2") } };
                graph.Main.InsertBefore(id, fc2);
                graph.Main.SetInput(fc2, 0, id.Output[0]);
            })]);
        Assert.Equal(["first", "insert-identity"], order);
        Assert.Equal(["first", "insert-identity"], results.Select(r => r.PassName));
        Assert.Null(GraphInvariants.FindViolation(g));
    }

    [Fact]
    public void RemovingAProducer_IsCaught()
    {
        var g = TestModels.Mlp().ToGraph();
        var e = RunBroken(g, "drop-relu", graph => graph.Main.RemoveNode(NodeNamed(graph, "relu")));
        Assert.Equal("pass 'drop-relu' produced an invalid graph: node 'fc2' (MatMul) in main reads 'h2', which nothing defines.", e.Message);
    }

    [Fact]
    public void RemovingTheProducerOfAGraphOutput_IsCaught()
    {
        var g = TestModels.Mlp().ToGraph();
        var e = RunBroken(g, "drop-last", graph => graph.Main.RemoveNode(NodeNamed(graph, "fc2_bias")));
        Assert.Equal("pass 'drop-last' produced an invalid graph: graph output 'y' of main is not computed by any node.", e.Message);
    }

    [Fact]
    public void RenamingAGraphOutput_IsCaught_EvenWhenTheGraphIsOtherwiseSound()
    {
        var g = TestModels.Mlp().ToGraph();
        var e = RunBroken(g, "rename-output", graph =>
        {
            NodeNamed(graph, "fc2_bias").Output[0] = "logits";
            graph.Main.Proto.Output[0].Name = "logits";
        });
        Assert.Equal("pass 'rename-output' produced an invalid graph: graph output 'y' was changed or removed.", e.Message);
    }

    [Fact]
    public void ChangingAGraphInput_IsCaught()
    {
        var g = TestModels.Mlp().ToGraph();
        var e = RunBroken(g, "retype-input", graph => graph.Main.Proto.Input[0].Type.TensorType.ElemType = (int)OnnxDataType.Float16);
        Assert.Contains("graph input 'x' (float[batch,4]) was changed or removed", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DuplicatingAValue_IsCaught()
    {
        var g = TestModels.Mlp().ToGraph();
        var e = RunBroken(g, "duplicate", graph =>
            graph.Main.AddNode(new NodeProto { OpType = "Relu", Name = "relu_again", Input = { "h0" }, Output = { "h1" } }));
        Assert.Equal("pass 'duplicate' produced an invalid graph: value 'h1' in main is produced twice.", e.Message);
    }

    [Fact]
    public void DuplicatingAnInitializer_OrShadowingAnInput_IsCaught()
    {
        var g = TestModels.Mlp().ToGraph();
        var e = RunBroken(g, "duplicate-initializer", graph => graph.Main.Proto.Initializer.Add(TestTensors.Float("b2", [3], 0f, 0f, 0f)));
        Assert.Contains("initializer 'b2' of main is defined twice", e.Message, StringComparison.Ordinal);
        var g2 = TestModels.Mlp().ToGraph();
        var e2 = RunBroken(g2, "shadow-input", graph => NodeNamed(graph, "relu").Output[0] = "x");
        Assert.Contains("value 'x' in main is produced twice", e2.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReusingANodeName_IsCaught()
    {
        var g = TestModels.Mlp().ToGraph();
        var e = RunBroken(g, "same-name", graph => NodeNamed(graph, "fc2").Name = "fc1");
        Assert.Contains("node name 'fc1' is used twice", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BreakingTopologicalOrder_IsCaught()
    {
        var g = TestModels.Mlp().ToGraph();
        var e = RunBroken(g, "misplace", graph =>
        {
            var id = new NodeProto { OpType = "Identity", Name = "early", Input = { "h2" }, Output = { graph.UniqueName("h2") } };
            graph.Main.AddNode(id, 0);
            graph.Main.SetInput(NodeNamed(graph, "fc2"), 0, id.Output[0]);
        });
        Assert.Equal("pass 'misplace' produced an invalid graph: node 'early' (Identity) in main reads 'h2' before it is computed (not in topological order).", e.Message);
    }

    [Fact]
    public void BreakingASubgraph_IsCaught_AndTheMessageNamesTheSubgraph()
    {
        var g = ModelGraphEditTests.IfModel().ToGraph();
        var then = g.Scopes.Single(s => s.Path.EndsWith(".then_branch", StringComparison.Ordinal));
        var e = RunBroken(g, "break-branch", _ => then.RemoveNode(then.Nodes.Single(n => n.OpType == "MatMul")));
        Assert.Equal($"pass 'break-branch' produced an invalid graph: node 'then_Add_0' (Add) in {then.Path} reads 't0', which nothing defines.", e.Message);
        Assert.Equal("main/If_0.then_branch", then.Path);
    }
}
