using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Testing;

namespace MLNetCompress.Onnx.Tests.Graph;

/// <summary>
/// ModelGraph's incremental indexes stay equal to a full rebuild through random sequences of edits, on
/// a generated model with If branches and Constant nodes and on ResNet18. The edits keep the model's
/// meaning, so at the end ONNX Runtime must give bit-identical outputs.
/// </summary>
public class ModelGraphEditTests
{
    /// <summary>
    /// x·W1 + c1 (value_floats), · c0 (value_float), Reshape by shape (value_ints), then If(flag):
    /// then h3·Wt + ct (weights inside the branch), else h3 + c2 (a value tensor), all float[2,4].
    /// </summary>
    internal static ModelBuilder IfModel() =>
        TestModels.Model(opset: 13)
            .Input("x", OnnxDataType.Float, 2, 4)
            .Input("flag", OnnxDataType.Bool)
            .Initializer(TestTensors.Random("W1", [4, 4], 1))
            .ConstantFloats("c1", 0.5f, -1f, 2f, 0.25f)
            .ConstantFloat("c0", 1.5f)
            .ConstantInts("shape", 2, 4)
            .ConstantInt("axis0", 0)
            .Constant("c2", TestTensors.Float("c2", [4], 3f, -3f, 0.125f, 8f))
            .Node("MatMul", ["x", "W1"], ["h"])
            .Node("Add", ["h", "c1"], ["h1"])
            .Node("Mul", ["h1", "c0"], ["h2"])
            .Node("Reshape", ["h2", "shape"], ["h3"])
            .If("flag", ["y"],
                TestModels.Graph("then")
                    .Initializer(TestTensors.Random("Wt", [4, 4], 2))
                    .Constant("ct", TestTensors.Float("ct", [4], 1f, 2f, 3f, 4f))
                    .Node("MatMul", ["h3", "Wt"], ["t0"])
                    .Node("Add", ["t0", "ct"], ["t1"])
                    .Output("t1", OnnxDataType.Float, 2, 4),
                TestModels.Graph("else")
                    .Node("Add", ["h3", "c2"], ["e0"])
                    .Output("e0", OnnxDataType.Float, 2, 4))
            .Output("y", OnnxDataType.Float, 2, 4);

    private static readonly float[] X = [0.5f, -1f, 2f, 0.25f, 1.5f, -0.75f, 3f, -2f];

    private static OrtOutput[] RunIfModel(byte[] model, bool flag)
    {
        using var x = Ort.Floats(X, 2, 4);
        using var f = Ort.Bools([flag]);
        return Ort.RunUnoptimized(model, ("x", x), ("flag", f));
    }

    private static OrtOutput[] RunResNet(byte[] model)
    {
        var image = TestTensors.RandomValues(3 * 224 * 224, 11);
        using var input = Ort.Floats(image, 1, 3, 224, 224);
        return Ort.RunUnoptimized(model, ("Input247", input));
    }

    internal static void AssertIndexes(ModelGraph g, string step)
    {
        foreach (var s in g.Scopes)
            Assert.True(s.IndexesMatchRebuild(out var d), $"after {step}: indexes of {s.Path} differ from a rebuild ({d})");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void RandomEdits_OnGeneratedModel_KeepIndexesAndMeaning(int seed)
    {
        var original = IfModel().ToBytes();
        var g = ModelGraph.FromBytes(original);
        var log = new RandomEditor(g, seed).Run(steps: 150);
        Assert.True(log.Count(l => l.StartsWith("in subgraph", StringComparison.Ordinal)) > 5, "too few edits inside the If branches:\n" + string.Join("\n", log));
        // Every kind of edit ran, ReplaceConstant on Constant nodes included.
        foreach (var kind in RandomEditor.Kinds.Append("replace-constant (Constant node)"))
            Assert.True(log.Any(l => l.EndsWith(": " + kind, StringComparison.Ordinal)), $"no {kind} edit with seed {seed}:\n" + string.Join("\n", log));
        var edited = g.ToBytes();
        foreach (bool flag in new[] { true, false })
        {
            var expected = RunIfModel(original, flag);
            var actual = RunIfModel(edited, flag);
            Assert.Equal(expected[0].Bytes, actual[0].Bytes);
        }
        Assert.NotEqual(RunIfModel(original, true)[0].Bytes, RunIfModel(original, false)[0].Bytes);
    }

    [Fact]
    public void RandomEdits_OnResNet18_KeepIndexesAndMeaning()
    {
        var original = File.ReadAllBytes(RealModels.ResNet18);
        var g = ModelGraph.FromBytes(original);
        var log = new RandomEditor(g, seed: 5).Run(steps: 80);
        Assert.Contains(log, l => l.Contains("initializer-to-constant", StringComparison.Ordinal));
        Assert.Contains(log, l => l.Contains("constant-to-initializer", StringComparison.Ordinal));
        Assert.Equal(["Input247"], g.Main.Proto.Input.Select(i => i.Name));
        Assert.Equal(RunResNet(original)[0].Bytes, RunResNet(g.ToBytes())[0].Bytes);
    }

    /// <summary>Applies random edits that keep a model's meaning, checking the indexes after each one.</summary>
    private sealed class RandomEditor(ModelGraph g, int seed)
    {
        private readonly Random rng = new(seed);
        private readonly List<string> log = [];

        public static readonly string[] Kinds =
        [
            "identity-on-edge", "identity-on-value", "bypass-identity", "initializer-to-constant", "constant-to-initializer",
            "replace-constant", "duplicate-initializer", "route-outer-value", "dead-node", "remove-unused",
        ];

        public List<string> Run(int steps)
        {
            var edits = new (string Name, Func<GraphScope, bool> Apply)[]
            {
                ("identity-on-edge", IdentityOnEdge),
                ("identity-on-value", IdentityOnValue),
                ("bypass-identity", BypassIdentity),
                ("initializer-to-constant", InitializerToConstant),
                ("constant-to-initializer", ConstantToInitializer),
                ("replace-constant", ReplaceConstant),
                ("duplicate-initializer", DuplicateInitializer),
                ("route-outer-value", RouteOuterValue),
                ("dead-node", DeadNode),
                ("remove-unused", RemoveUnused),
            };
            for (int step = 0; step < steps; step++)
            {
                var scopes = g.Scopes.ToList();
                var scope = scopes[rng.Next(scopes.Count)];
                var (name, apply) = edits[rng.Next(edits.Length)];
                if (!apply(scope)) continue;
                string where = scope.Parent is null ? "in main" : "in subgraph " + scope.Path;
                log.Add($"{where}: {name}");
                AssertIndexes(g, $"step {step} ({name} {where})");
                var problem = GraphInvariants.FindViolation(g);
                Assert.True(problem is null, $"step {step} ({name} {where}) broke the graph: {problem}");
            }
            Assert.True(log.Count > steps / 3, "most edits found nothing to do:\n" + string.Join("\n", log));
            return log;
        }

        private T Pick<T>(IReadOnlyList<T> items) => items[rng.Next(items.Count)];

        private NodeProto NewNode(string op, string[] inputs, string[] outputs)
        {
            var n = new NodeProto { OpType = op, Name = g.UniqueName(op) };
            n.Input.AddRange(inputs);
            n.Output.AddRange(outputs);
            return n;
        }

        private void Check(string what, string step) => AssertIndexes(g, $"{step}: {what}");

        // x → n becomes x → Identity → n.
        private bool IdentityOnEdge(GraphScope s)
        {
            var candidates = s.Nodes.Where(n => n.Input.Any(i => i.Length > 0)).ToList();
            if (candidates.Count == 0) return false;
            var n = Pick(candidates);
            int k = Pick(Enumerable.Range(0, n.Input.Count).Where(i => n.Input[i].Length > 0).ToList());
            string v = n.Input[k], t = g.UniqueName(v + "_e");
            var id = NewNode("Identity", [v], [t]);
            s.InsertBefore(id, n);
            Check("InsertBefore", "identity-on-edge");
            s.SetInput(n, k, t);
            Assert.Same(id, s.Producer(t));
            Assert.Contains(n, s.Consumers(t));
            Assert.Contains(id, s.Consumers(v));
            return true;
        }

        // Every reader of a node's output, in subgraphs too, reads it through an Identity instead.
        private bool IdentityOnValue(GraphScope s)
        {
            var candidates = s.Nodes.Where(n => n.Output.Count == 1 && s.Consumers(n.Output[0]).Count > 0).ToList();
            if (candidates.Count == 0) return false;
            var p = Pick(candidates);
            string o = p.Output[0], t = g.UniqueName(o + "_v");
            bool wasOutput = s.IsGraphOutput(o);
            s.ReplaceUses(o, t);
            Check("ReplaceUses", "identity-on-value");
            Assert.Empty(s.Consumers(o));
            var id = NewNode("Identity", [o], [t]);
            s.AddNode(id, s.Nodes.ToList().IndexOf(p) + 1);
            Assert.Equal([id], s.Consumers(o));
            Assert.Equal(wasOutput, s.IsGraphOutput(o)); // a value defined here keeps its place among the outputs
            return true;
        }

        private bool BypassIdentity(GraphScope s)
        {
            var candidates = s.Nodes.Where(n => n.OpType == "Identity" && !s.IsGraphOutput(n.Output[0])).ToList();
            if (candidates.Count == 0) return false;
            var id = Pick(candidates);
            s.ReplaceUses(id.Output[0], id.Input[0]);
            Check("ReplaceUses", "bypass-identity");
            Assert.Equal([id], s.Consumers(id.Output[0]).Concat(s.Consumers(id.Input[0]).Where(n => ReferenceEquals(n, id))));
            s.RemoveNode(id);
            Assert.Null(s.Producer(id.Output[0]));
            Assert.Empty(s.Consumers(id.Output[0]));
            Assert.DoesNotContain(id, s.Consumers(id.Input[0]));
            return true;
        }

        private bool InitializerToConstant(GraphScope s)
        {
            var candidates = s.Initializers.Where(t => !s.IsGraphOutput(t.Name)).ToList();
            if (candidates.Count == 0) return false;
            var t = Pick(candidates);
            bool wasInput = s.Proto.Input.Any(i => i.Name == t.Name);
            var before = TensorData.RawBytes(t).ToArray();
            s.RemoveInitializer(t.Name);
            Check("RemoveInitializer", "initializer-to-constant");
            Assert.Null(s.Initializer(t.Name));
            // IR 3 lists initializers as inputs: the input goes with it.
            Assert.DoesNotContain(s.Proto.Input, i => i.Name == t.Name);
            Assert.False(s.IsGraphInput(t.Name));
            var c = NewNode("Constant", [], [t.Name]);
            c.Attribute.Add(new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = t });
            s.AddNode(c, 0);
            Assert.Equal(before, TensorData.RawBytes(s.ConstantValue(t.Name)!).ToArray());
            if (wasInput) log.Add("  (IR 3 input removed with it)");
            return true;
        }

        private bool ConstantToInitializer(GraphScope s)
        {
            var candidates = s.Nodes.Where(n => n.OpType == "Constant" && n.Attribute.Count == 1 && n.Attribute[0].Name == "value").ToList();
            if (candidates.Count == 0) return false;
            var c = Pick(candidates);
            var t = c.Attribute[0].T.Clone();
            t.Name = c.Output[0];
            s.RemoveNode(c);
            Check("RemoveNode", "constant-to-initializer");
            s.AddInitializer(t);
            Assert.Same(t, s.ConstantValue(t.Name));
            return true;
        }

        // The same values in another encoding: float_data instead of raw_data, or back.
        private bool ReplaceConstant(GraphScope s)
        {
            var names = s.Initializers.Select(t => t.Name)
                .Concat(s.Nodes.Where(n => n.OpType == "Constant").Select(n => n.Output[0]))
                .Where(n => s.ConstantValue(n)?.DataType == (int)OnnxDataType.Float).ToList();
            if (names.Count == 0) return false;
            string name = Pick(names);
            bool node = s.Initializer(name) is null;
            var old = s.ConstantValue(name)!;
            var values = TensorData.ToFloatArray(old);
            var replacement = old.FloatData.Count > 0
                ? TestTensors.Float("", [.. old.Dims], values)
                : TestTensors.FloatTyped("", [.. old.Dims], values);
            s.ReplaceConstant(name, replacement);
            Assert.Equal(name, replacement.Name);
            Assert.Same(replacement, s.ConstantValue(name));
            Assert.Equal(values, TensorData.ToFloatArray(s.ConstantValue(name)!));
            if (node) log.Add((s.Parent is null ? "in main" : "in subgraph " + s.Path) + ": replace-constant (Constant node)");
            return true;
        }

        private bool DuplicateInitializer(GraphScope s)
        {
            var candidates = s.Initializers.SelectMany(t => s.Consumers(t.Name).Where(n => n.Input.Contains(t.Name)).Select(n => (t, n))).ToList();
            if (candidates.Count == 0) return false;
            var (t, n) = Pick(candidates);
            var copy = t.Clone();
            copy.Name = g.UniqueName(t.Name + "_copy");
            s.AddInitializer(copy);
            Check("AddInitializer", "duplicate-initializer");
            s.SetInput(n, n.Input.IndexOf(t.Name), copy.Name);
            Assert.Contains(n, s.Consumers(copy.Name));
            return true;
        }

        // In a subgraph, a value read from the enclosing graph is read through an Identity placed in the
        // enclosing graph: what the subgraph reads from outside changes, and so must the owner's entries.
        private bool RouteOuterValue(GraphScope s)
        {
            if (s.Parent is null) return false;
            var candidates = s.Nodes.SelectMany(n => n.Input.Select((v, k) => (n, k, v)))
                .Where(e => e.v.Length > 0 && s.Producer(e.v) is null && s.Initializer(e.v) is null && !s.Proto.Input.Any(i => i.Name == e.v)).ToList();
            if (candidates.Count == 0) return false;
            var (n, k, v) = Pick(candidates);
            var parent = s.Parent;
            var owner = s.OwnerNode!;
            string t = g.UniqueName(v + "_outer");
            parent.InsertBefore(NewNode("Identity", [v], [t]), owner);
            Check("InsertBefore in parent", "route-outer-value");
            s.SetInput(n, k, t);
            Assert.Contains(owner, parent.Consumers(t));
            bool subgraphStillReadsV = owner.Input.Contains(v) || owner.Attribute.Any(a => a.G is not null && GraphScope.FreeValues(a.G).Contains(v));
            Assert.Equal(subgraphStillReadsV, parent.Consumers(v).Contains(owner));
            return true;
        }

        private bool DeadNode(GraphScope s)
        {
            var values = s.Nodes.SelectMany(n => n.Output).Where(o => o.Length > 0).ToList();
            if (values.Count == 0) return false;
            var v = Pick(values);
            s.AddNode(NewNode("Identity", [v], [g.UniqueName("dead")]));
            return true;
        }

        private bool RemoveUnused(GraphScope s)
        {
            var dead = s.Nodes.Where(n => n.OpType == "Identity" && n.Output[0].StartsWith("dead", StringComparison.Ordinal)).ToList();
            if (dead.Count > 0) s.RemoveNodes(dead);
            Check("RemoveNodes", "remove-unused");
            int before = s.Initializers.Count();
            int removed = s.RemoveUnusedConstants();
            Assert.True(removed >= 0 && s.Initializers.Count() <= before);
            Assert.All(s.Initializers, t => Assert.True(s.Consumers(t.Name).Count > 0 || s.IsGraphOutput(t.Name)));
            return dead.Count > 0 || removed > 0;
        }
    }

    // ---- names, constants, IR 3, sorting ------------------------------------------------------

    private static HashSet<string> AllNames(GraphProto g, HashSet<string>? names = null)
    {
        names ??= new HashSet<string>(StringComparer.Ordinal);
        foreach (var v in g.Input.Concat(g.Output).Concat(g.ValueInfo)) names.Add(v.Name);
        foreach (var t in g.Initializer) names.Add(t.Name);
        foreach (var n in g.Node)
        {
            names.Add(n.Name);
            foreach (var v in n.Input.Concat(n.Output)) names.Add(v);
            foreach (var a in n.Attribute)
            {
                if (a.G is not null) AllNames(a.G, names);
                foreach (var sg in a.Graphs) AllNames(sg, names);
            }
        }
        names.Remove("");
        return names;
    }

    [Fact]
    public void UniqueName_NeverCollides_AndIsDeterministic()
    {
        foreach (var bytes in new[] { IfModel().ToBytes(), TestModels.Mlp().IrVersion(3).InitializersAsInputs().ToBytes(), File.ReadAllBytes(RealModels.MlpSample) })
        {
            var g = ModelGraph.FromBytes(bytes);
            var taken = AllNames(g.Main.Proto);
            var prefixes = taken.Order(StringComparer.Ordinal).ToList();
            prefixes.AddRange(["x", "y_1", "Identity", "then_MatMul_0", "W1_1"]);
            var rng = new Random(9);
            var given = new List<string>();
            for (int i = 0; i < 600; i++)
            {
                // Prefixes include existing names, earlier results, and names that look like results ("p_1").
                string prefix = (i % 3) switch
                {
                    0 => prefixes[rng.Next(prefixes.Count)],
                    1 when given.Count > 0 => given[rng.Next(given.Count)],
                    _ => prefixes[rng.Next(prefixes.Count)] + "_" + rng.Next(1, 4),
                };
                string name = g.UniqueName(prefix);
                Assert.True(taken.Add(name), $"UniqueName('{prefix}') gave '{name}', which is taken");
                Assert.StartsWith(prefix, name, StringComparison.Ordinal);
                given.Add(name);
            }
            // A value added by an edit is taken too.
            g.Main.AddNode(new NodeProto { OpType = "Identity", Name = "fresh_node", Input = { g.Signature.Inputs[0].Name }, Output = { "fresh_value" } });
            Assert.NotEqual("fresh_value", g.UniqueName("fresh_value"));
            Assert.NotEqual("fresh_node", g.UniqueName("fresh_node"));
            // The same calls on a fresh load give the same names.
            var again = ModelGraph.FromBytes(bytes);
            var rng2 = new Random(9);
            var given2 = new List<string>();
            for (int i = 0; i < 600; i++)
            {
                string prefix = (i % 3) switch
                {
                    0 => prefixes[rng2.Next(prefixes.Count)],
                    1 when given2.Count > 0 => given2[rng2.Next(given2.Count)],
                    _ => prefixes[rng2.Next(prefixes.Count)] + "_" + rng2.Next(1, 4),
                };
                given2.Add(again.UniqueName(prefix));
            }
            Assert.Equal(given, given2);
        }
    }

    [Fact]
    public void UniqueName_AvoidsSparseInitializerNames()
    {
        var model = TestModels.Mlp().Build();
        var sparse = new SparseTensorProto { Values = TestTensors.Float("sparse_w", [1], 2f), Indices = TestTensors.Int64("sparse_w_idx", [1], 0) };
        sparse.Dims.Add(4);
        model.Graph.SparseInitializer.Add(sparse);
        var g = ModelGraph.FromBytes(model.ToByteArray());
        Assert.NotEqual("sparse_w", g.UniqueName("sparse_w"));
    }

    [Fact]
    public void Constants_SeesInitializersConstantNodesAndBranchWeights()
    {
        var g = IfModel().ToGraph();
        var byName = g.Constants.ToDictionary(c => c.Name);
        Assert.Equal(["W1", "Wt", "axis0", "c0", "c1", "c2", "ct", "shape"], byName.Keys.Order(StringComparer.Ordinal));

        Assert.Equal(ConstantKind.Initializer, byName["W1"].Kind);
        Assert.Equal(TestTensors.RandomValues(16, 1), byName["W1"].ToFloats());
        Assert.Equal([4L, 4L], byName["W1"].Dims);
        Assert.False(byName["W1"].InSubgraph);

        Assert.Equal(ConstantKind.ConstantNode, byName["c1"].Kind); // value_floats
        Assert.Equal([0.5f, -1f, 2f, 0.25f], byName["c1"].ToFloats());
        Assert.Equal([4L], byName["c1"].Dims);
        Assert.Equal(OnnxDataType.Float, byName["c1"].DataType);

        Assert.Equal([1.5f], byName["c0"].ToFloats()); // value_float: a scalar
        Assert.Empty(byName["c0"].Dims);

        Assert.Equal(OnnxDataType.Int64, byName["shape"].DataType); // value_ints
        Assert.Equal([2L, 4L], TensorData.ToInt64Array(byName["shape"].Tensor));
        Assert.Equal(OnnxDataType.Int64, byName["axis0"].DataType); // value_int
        Assert.Empty(byName["axis0"].Dims);
        Assert.Equal([0L], TensorData.ToInt64Array(byName["axis0"].Tensor));

        Assert.Equal([3f, -3f, 0.125f, 8f], byName["c2"].ToFloats()); // value
        Assert.Equal(16, byName["c2"].ByteCount);

        Assert.True(byName["Wt"].InSubgraph);
        Assert.Equal(ConstantKind.Initializer, byName["Wt"].Kind);
        Assert.EndsWith(".then_branch", byName["Wt"].Scope.Path, StringComparison.Ordinal);
        Assert.Equal(TestTensors.RandomValues(16, 2), byName["Wt"].ToFloats());
        Assert.True(byName["ct"].InSubgraph);
        Assert.Equal(ConstantKind.ConstantNode, byName["ct"].Kind);
        Assert.Equal([1f, 2f, 3f, 4f], byName["ct"].ToFloats());
        Assert.All(byName.Values, c => Assert.Null(c.ExternalLocation));
    }

    [Fact]
    public void Ir3_RemoveInitializer_RemovesTheGraphInputToo_AndOrtRunsTheResult()
    {
        var builder = TestModels.Mlp(opset: 8).IrVersion(3).InitializersAsInputs();
        var original = builder.ToBytes();
        var g = ModelGraph.FromBytes(original);
        Assert.Equal(5, g.Main.Proto.Input.Count);
        Assert.Equal(["x"], g.Signature.Inputs.Select(i => i.Name));
        // Move b2 into a Constant node: its initializer and its graph input both go.
        var b2 = g.Main.Initializer("b2")!;
        g.Main.RemoveInitializer("b2");
        Assert.Equal(["x", "W1", "b1", "W2"], g.Main.Proto.Input.Select(i => i.Name));
        var c = new NodeProto { OpType = "Constant", Name = g.UniqueName("b2_const"), Output = { "b2" } };
        c.Attribute.Add(Attr.Tensor("value", b2));
        g.Main.AddNode(c, 0);
        AssertIndexes(g, "IR 3 initializer to Constant");
        Assert.Equal(["x"], g.Signature.Inputs.Select(i => i.Name));
        // Replacing an IR 3 initializer with another shape keeps its graph-input declaration in step.
        g.Main.ReplaceConstant("b1", TestTensors.Float("", [1, 8], TestTensors.RandomValues(8, 2)));
        var declared = g.Main.Proto.Input.Single(i => i.Name == "b1").Type.TensorType.Shape.Dim.Select(d => d.DimValue);
        Assert.Equal([1L, 8L], declared);

        var xs = TestTensors.RandomValues(8, 4);
        using var x1 = Ort.Floats(xs, 2, 4);
        var expected = Ort.RunUnoptimized(original, ("x", x1))[0].Floats;
        var actual = Ort.RunUnoptimized(g.ToBytes(), ("x", x1))[0].Floats;
        Assert.Equal(expected, actual);
        // And against the formula: y = relu(x·W1 + b1)·W2 + b2.
        Assert.Equal(MlpByHand(xs, 2), expected, new FloatTolerance(1e-5f));
    }

    [Fact]
    public void Ir3_InitializerNobodyReads_IsLeftOutOfTheWrittenModel()
    {
        // ONNX Runtime refuses an IR 3 model with an initializer that no node reads and no input declares.
        var builder = TestModels.Mlp(opset: 8).IrVersion(3).Initializer(TestTensors.Float("unread", [2], 1f, 2f));
        Assert.Throws<OnnxRuntimeException>(() => Ort.Session(builder.ToBytes()).Dispose());
        // An edit leaves one behind: fc2 reads a copy of W2, so W2 itself is read by nobody.
        var g = TestModels.Mlp(opset: 8).IrVersion(3).ToGraph();
        var copy = g.Main.Initializer("W2")!.Clone();
        copy.Name = g.UniqueName("W2");
        g.Main.AddInitializer(copy);
        var fc2 = g.Main.Consumers("W2").Single();
        g.Main.SetInput(fc2, 1, copy.Name);
        Assert.Empty(g.Main.Consumers("W2"));
        var written = g.ToBytes();
        Assert.NotNull(g.Main.Initializer("W2")); // the graph in memory is as edited
        var reread = ModelGraph.FromBytes(written);
        Assert.Null(reread.Main.Initializer("W2"));
        Assert.NotNull(reread.Main.Initializer(copy.Name));
        var dir = RealModels.TempDir("ir3-unread");
        g.Save(Path.Combine(dir, "m.onnx"));
        Assert.Equal(written, File.ReadAllBytes(Path.Combine(dir, "m.onnx")));
        var xs = TestTensors.RandomValues(8, 4);
        using var x = Ort.Floats(xs, 2, 4);
        Assert.Equal(MlpByHand(xs, 2), Ort.Run(written, ("x", x))[0].Floats, new FloatTolerance(1e-5f));
        // IR 4 and later keep what they hold: ONNX Runtime accepts unread initializers there.
        var ir4 = builder.IrVersion(4).ToGraph();
        Assert.NotNull(ModelGraph.FromBytes(ir4.ToBytes()).Main.Initializer("unread"));
    }

    [Fact]
    public void Edits_ActOnTheNodeGiven_NotOnAnEqualOne()
    {
        // Protobuf messages compare by value: these two unnamed nodes are Equal, yet distinct nodes.
        var g = TestModels.Model().Input("x", OnnxDataType.Float, 2)
            .Node("Identity", ["x"], [""], name: "")
            .Node("Identity", ["x"], [""], name: "")
            .Node("Relu", ["x"], ["y"], name: "r")
            .Output("y", OnnxDataType.Float, 2)
            .ToGraph();
        var (a, b, r) = (g.Main.Nodes[0], g.Main.Nodes[1], g.Main.Nodes[2]);
        Assert.Equal(a, b);
        Assert.NotSame(a, b);
        var before = new NodeProto { OpType = "Identity", Name = "before_b", Input = { "x" }, Output = { "x2" } };
        g.Main.InsertBefore(before, b);
        Assert.Same(before, g.Main.Nodes[1]);
        g.Main.RemoveNode(b);
        Assert.Equal(3, g.Main.NodeCount);
        Assert.Same(a, g.Main.Nodes[0]);
        Assert.Same(r, g.Main.Nodes[2]);
        Assert.Equal(3, g.Main.Consumers("x").Count);
        Assert.Contains(g.Main.Consumers("x"), n => ReferenceEquals(n, a));
        Assert.DoesNotContain(g.Main.Consumers("x"), n => ReferenceEquals(n, b));
        AssertIndexes(g, "remove one of two equal nodes");
    }

    [Fact]
    public void ReplaceConstant_KeepsValueInfoInStep_AndOrtRunsTheResult()
    {
        var g = TestModels.Model().Input("x", OnnxDataType.Float, 2)
            .Constant("c", TestTensors.Float("c", [2], 1f, 2f))
            .ValueInfo("c", OnnxDataType.Float, 2)
            .Node("Add", ["x", "c"], ["y"])
            .Output("y", OnnxDataType.Float, 2)
            .ToGraph();
        g.Main.ReplaceConstant("c", TestTensors.Float("", [1], 5f));
        Assert.Equal([1L], g.Main.Proto.ValueInfo.Single().Type.TensorType.Shape.Dim.Select(d => d.DimValue));
        Assert.Equal([5f], g.Constants.Single().ToFloats());
        using var x = Ort.Floats([1f, -1f], 2);
        Assert.Equal([6f, 4f], Ort.Run(g.ToBytes(), ("x", x))[0].Floats);
        Assert.Throws<InvalidOperationException>(() => g.Main.ReplaceConstant("x", TestTensors.Float("", [1], 5f)));
        Assert.Throws<InvalidOperationException>(() => g.Main.AddInitializer(TestTensors.Float("y", [1], 5f)));
    }

    private sealed class FloatTolerance(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float a, float b) => Math.Abs(a - b) <= tolerance * Math.Max(1, Math.Abs(a));
        public int GetHashCode(float f) => 0;
    }

    // TestModels.Mlp() with its default sizes (4 → 8 → 3) and seed 1, computed in doubles.
    private static float[] MlpByHand(float[] x, int batch)
    {
        var w1 = TestTensors.RandomValues(32, 1); var b1 = TestTensors.RandomValues(8, 2);
        var w2 = TestTensors.RandomValues(24, 3); var b2 = TestTensors.RandomValues(3, 4);
        var y = new float[batch * 3];
        for (int r = 0; r < batch; r++)
        {
            var h = new double[8];
            for (int j = 0; j < 8; j++)
            {
                double acc = b1[j];
                for (int i = 0; i < 4; i++) acc += x[r * 4 + i] * (double)w1[i * 8 + j];
                h[j] = Math.Max(0, acc);
            }
            for (int k = 0; k < 3; k++)
            {
                double acc = b2[k];
                for (int j = 0; j < 8; j++) acc += h[j] * w2[j * 3 + k];
                y[r * 3 + k] = (float)acc;
            }
        }
        return y;
    }

    [Fact]
    public void TestModelsMlp_RunsInOrtAsTheFormulaSays()
    {
        var xs = TestTensors.RandomValues(12, 8);
        using var x = Ort.Floats(xs, 3, 4);
        var y = Assert.Single(Ort.Run(TestModels.Mlp().ToBytes(), ("x", x)));
        Assert.Equal([3L, 3L], y.Shape);
        Assert.Equal(MlpByHand(xs, 3), y.Floats, new FloatTolerance(1e-5f));
    }

    private static void AssertTopological(GraphProto g, IEnumerable<string> outer)
    {
        var defined = new HashSet<string>(outer.Concat(g.Input.Select(i => i.Name)).Concat(g.Initializer.Select(t => t.Name)).Append(""));
        foreach (var n in g.Node)
        {
            foreach (var a in n.Attribute.Where(a => a.G is not null)) AssertTopological(a.G, defined);
            Assert.All(n.Input, i => Assert.Contains(i, defined));
            foreach (var o in n.Output) defined.Add(o);
        }
    }

    [Fact]
    public void UnsortedGraph_IsSortedOnLoad_AndRunsInOrt()
    {
        var sorted = IfModel().ToBytes();
        var unsorted = IfModel().Edit(g =>
        {
            var nodes = g.Node.Reverse().ToList();
            g.Node.Clear();
            g.Node.AddRange(nodes);
            // The then-branch too.
            var then = nodes.Single(n => n.OpType == "If").Attribute.Single(a => a.Name == "then_branch").G;
            var inner = then.Node.Reverse().ToList();
            then.Node.Clear();
            then.Node.AddRange(inner);
        }).ToBytes();

        Assert.False(ModelGraph.FromBytes(sorted).WasReordered);
        var g = ModelGraph.FromBytes(unsorted);
        Assert.True(g.WasReordered);
        AssertTopological(g.Main.Proto, []);
        AssertIndexes(g, "load");
        var written = g.ToBytes();
        // A second load finds nothing to sort.
        Assert.False(ModelGraph.FromBytes(written).WasReordered);
        foreach (bool flag in new[] { true, false })
            Assert.Equal(RunIfModel(sorted, flag)[0].Bytes, RunIfModel(written, flag)[0].Bytes);
    }
}
