using Google.Protobuf;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Onnx.Tests.Graph;
using MLNetCompress.Testing;

namespace MLNetCompress.Onnx.Tests.IO;

/// <summary>
/// Every kind of bad input ends in one <see cref="OnnxFormatException"/> with a one-line message, and
/// never in another exception type (nor in a huge allocation).
/// </summary>
public class BadInputTests
{
    internal static OnnxFormatException AssertFormatError(Action action, string? messageContains = null)
    {
        Exception? thrown = null;
        try { action(); }
        catch (Exception e) { thrown = e; }
        Assert.NotNull(thrown);
        var e2 = Assert.IsType<OnnxFormatException>(thrown, exactMatch: true);
        Assert.DoesNotContain('\n', e2.Message);
        Assert.DoesNotContain('\r', e2.Message);
        Assert.False(string.IsNullOrWhiteSpace(e2.Message));
        if (messageContains is not null) Assert.Contains(messageContains, e2.Message, StringComparison.Ordinal);
        return e2;
    }

    private static void AssertLoadFails(byte[] bytes, string? messageContains = null) =>
        AssertFormatError(() => ModelGraph.FromBytes(bytes), messageContains);

    [Fact]
    public void EmptyFile()
    {
        var path = Path.Combine(RealModels.TempDir("empty"), "empty.onnx");
        File.WriteAllBytes(path, []);
        AssertFormatError(() => ModelGraph.Load(path), "is empty");
        AssertLoadFails([], "not an ONNX model");
        AssertFormatError(() => ModelGraph.FromStream(new MemoryStream()), "not an ONNX model");
        AssertFormatError(() => ModelGraph.Load(Path.Combine(RealModels.TempDir("missing"), "none.onnx")), "does not exist");
    }

    [Fact]
    public void RandomBytes()
    {
        var kinds = new HashSet<string>();
        for (int seed = 0; seed < 400; seed++)
        {
            var rng = new Random(seed);
            var bytes = new byte[rng.Next(1, 3000)];
            rng.NextBytes(bytes);
            var e = AssertFormatError(() => ModelGraph.FromBytes(bytes));
            kinds.Add(e.InnerException?.GetType().Name ?? "none");
        }
        // Garbage fails in the parser in more than one way; all of them arrive as OnnxFormatException.
        Assert.Contains("InvalidProtocolBufferException", kinds);
    }

    [Fact]
    public void GarbageThatLooksLikeProtobuf()
    {
        // Valid tags with garbage payloads: a graph field holding invalid UTF-8 names, huge lengths, deep groups.
        byte[][] cases =
        [
            [0x3A, 0x04, 0x12, 0x02, 0xC3, 0x28],                 // graph { name: invalid UTF-8 }
            [0x12, 0x02, 0xFF, 0xFE],                             // producer_name: invalid UTF-8
            [0x3A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F],                 // graph of length 2^32-1
            [0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], // a varint of 11 bytes
            [.. Enumerable.Repeat((byte)0x0B, 200)],              // 200 nested start-group tags
            [0x0C],                                               // an end-group tag with no group
            [0x3A, 0x03, 0x0A, 0x05, 0x00],                       // a node longer than its graph
        ];
        foreach (var bytes in cases) AssertLoadFails(bytes);
    }

    public static TheoryData<string> TruncatedModels => ["mlp", "if", "resnet18"];

    [Theory]
    [MemberData(nameof(TruncatedModels))]
    public void TruncatedModel(string model)
    {
        var bytes = model switch
        {
            "mlp" => File.ReadAllBytes(RealModels.MlpSample),
            "if" => ModelGraphEditTests.IfModel().ToBytes(),
            _ => File.ReadAllBytes(RealModels.ResNet18),
        };
        if (model != "resnet18") ModelGraph.FromBytes(bytes); // whole, it loads (ResNet18's load is tested elsewhere)
        var cuts = model == "resnet18"
            ? new[] { 100, bytes.Length / 2, bytes.Length - 1 }
            : new[] { 1, 2, 5, 10, 50, 100, 300, bytes.Length / 3, bytes.Length / 2, bytes.Length - 20, bytes.Length - 2, bytes.Length - 1 };
        foreach (int cut in cuts.Where(c => c > 0 && c < bytes.Length))
            AssertLoadFails(bytes[..cut]);
        if (model == "mlp")
        {
            var path = Path.Combine(RealModels.TempDir("cut"), "cut.onnx");
            File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
            AssertFormatError(() => ModelGraph.Load(path), "cut.onnx");
        }
    }

    [Fact]
    public void BitFlippedModels_LoadOrFailWithFormatErrors()
    {
        // Mutations of a valid model: each either loads (and its constants decode or fail cleanly) or fails as a format error.
        var original = ModelGraphEditTests.IfModel().ToBytes();
        int loaded = 0, refused = 0;
        for (int seed = 0; seed < 800; seed++)
        {
            var rng = new Random(seed);
            var bytes = (byte[])original.Clone();
            for (int k = rng.Next(1, 4); k > 0; k--)
                bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));
            ModelGraph g;
            try { g = ModelGraph.FromBytes(bytes); }
            catch (OnnxFormatException e) { Assert.DoesNotContain('\n', e.Message); refused++; continue; }
            loaded++;
            foreach (var c in g.Constants)
            {
                try { c.ToFloats(); }
                catch (OnnxFormatException e) { Assert.DoesNotContain('\n', e.Message); }
            }
            foreach (var s in g.Scopes) Assert.True(s.IndexesMatchRebuild(out var d), d);
            g.ToBytes();
        }
        Assert.True(loaded > 50 && refused > 50, $"loaded {loaded}, refused {refused}");
    }

    [Fact]
    public void ValidProtobufThatIsNotAModel()
    {
        var mlp = TestModels.Mlp().Build();
        AssertLoadFails(mlp.Graph.ToByteArray(), "not an ONNX model");
        AssertLoadFails(mlp.Graph.Initializer[0].ToByteArray());
        AssertLoadFails(mlp.Graph.Node[0].ToByteArray());
        AssertLoadFails(new ModelProto { IrVersion = 8 }.ToByteArray(), "no graph");
        var noOpset = mlp.Clone();
        noOpset.OpsetImport.Clear();
        AssertLoadFails(noOpset.ToByteArray(), "no opset_import");
        var path = Path.Combine(RealModels.TempDir("tensor"), "tensor.onnx");
        File.WriteAllBytes(path, mlp.Graph.Initializer[0].ToByteArray());
        AssertFormatError(() => ModelGraph.Load(path), "tensor.onnx");
    }

    [Fact]
    public void GraphWithACycle()
    {
        var bytes = TestModels.Model()
            .Input("x", OnnxDataType.Float, 2)
            .Node("Add", ["x", "b"], ["a"], name: "n1")
            .Node("Relu", ["a"], ["b"], name: "n2")
            .Output("b", OnnxDataType.Float, 2)
            .ToBytes();
        AssertLoadFails(bytes, "has a cycle through node");
        var selfLoop = TestModels.Model().Input("x", OnnxDataType.Float, 2).Node("Add", ["x", "y"], ["y"], name: "self").Output("y", OnnxDataType.Float, 2).ToBytes();
        AssertLoadFails(selfLoop, "cycle through node 'self'");
    }

    [Fact]
    public void NodeReadingAnUndefinedValue()
    {
        var bytes = TestModels.Model()
            .Input("x", OnnxDataType.Float, 2)
            .Node("Add", ["x", "ghost"], ["y"], name: "adder")
            .Output("y", OnnxDataType.Float, 2)
            .ToBytes();
        var e = AssertLoadFails2(bytes);
        Assert.Equal("the model is not a valid ONNX graph: node 'adder' (Add) in main reads 'ghost', which nothing defines.", e.Message);
        // Inside an If branch too.
        var inBranch = TestModels.Model()
            .Input("c", OnnxDataType.Bool)
            .If("c", ["y"],
                TestModels.Graph("then").Node("Identity", ["ghost"], ["t"]).Output("t", OnnxDataType.Float),
                TestModels.Graph("else").ConstantFloat("e", 1f).Output("e", OnnxDataType.Float))
            .Output("y", OnnxDataType.Float)
            .ToBytes();
        AssertLoadFails(inBranch, "main/If_0.then_branch reads 'ghost', which nothing defines");
        // An output that nothing computes.
        var noOutput = TestModels.Model().Input("x", OnnxDataType.Float, 2).Output("nowhere", OnnxDataType.Float, 2).ToBytes();
        AssertLoadFails(noOutput, "graph output 'nowhere' of main is not computed by any node");
    }

    private static OnnxFormatException AssertLoadFails2(byte[] bytes) => AssertFormatError(() => ModelGraph.FromBytes(bytes));

    [Fact]
    public void NamesWithLineBreaks_StillGiveOneLineMessages()
    {
        var bytes = TestModels.Model()
            .Input("x", OnnxDataType.Float, 2)
            .Node("Add", ["x", "evil\nname\r\nhere"], ["y"], name: "line\nbreak")
            .Output("y", OnnxDataType.Float, 2)
            .ToBytes();
        AssertLoadFails(bytes, "evil name  here");
    }

    // ---- tensors whose payload does not match their shape -----------------------------------

    private static ConstantTensor LoadConstant(TensorProto t)
    {
        var g = TestModels.Model().Input("x", OnnxDataType.Float).Initializer(t).Node("Identity", [t.Name], ["y"]).Output("y", OnnxDataType.Float).ToGraph();
        return g.Constants.Single();
    }

    private static void AssertDecodeFailsFast(TensorProto t, string messageContains)
    {
        var c = LoadConstant(t); // loading does not read payloads
        long before = GC.GetAllocatedBytesForCurrentThread();
        AssertFormatError(() => c.ToFloats(), messageContains);
        AssertFormatError(() => TensorData.ToInt64Array(t), null);
        AssertFormatError(() => TensorData.RawBytes(t), messageContains);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "decoding allocated more than 1 MB for a tensor with 4 bytes of data");
    }

    [Fact]
    public void DeclaredSizeBeyondPayload_FailsWithoutAllocatingIt()
    {
        // dims [2^40] with 4 bytes: in raw_data, and in float_data / int32_data / int64_data.
        AssertDecodeFailsFast(TestTensors.Float("big", [1L << 40], 1f), "holds 4 bytes");
        AssertDecodeFailsFast(TestTensors.FloatTyped("big", [1L << 40], 1f), "float_data holds 1");
        var int4 = TestTensors.Header("big4", [1L << 40], OnnxDataType.Int4);
        int4.Int32Data.Add(0x21);
        AssertDecodeFailsFast(int4, "int32_data holds 1");
        var i64 = TestTensors.Header("big64", [1L << 40, 3], OnnxDataType.Int64);
        i64.Int64Data.Add(5);
        AssertDecodeFailsFast(i64, "int64_data holds 1");
        // Shapes whose bit count wraps around 2^64 to exactly the payload if computed naively:
        // (2^59 + 1) floats are 2^61 + 4 bytes, and (2^61 + 1) floats do not fit 64 bits at all.
        AssertDecodeFailsFast(TestTensors.Float("wrap", [(1L << 59) + 1], 1f), "(2305843009213693956 bytes) but its payload holds 4 bytes");
        AssertDecodeFailsFast(TestTensors.Float("wrap2", [(1L << 61) + 1], 1f), "too many elements");
        // Fewer bytes than declared, and more.
        AssertFormatError(() => TensorData.ToFloatArray(TestTensors.Float("short", [3], 1f, 2f)), "holds 8 bytes");
        AssertFormatError(() => TensorData.ToFloatArray(TestTensors.Float("long", [1], 1f, 2f)), "holds 8 bytes");
    }

    [Fact]
    public void NegativeAndOverflowingDims()
    {
        AssertDecodeFailsFast(TestTensors.Float("neg", [-1], 1f), "negative dimension -1");
        AssertDecodeFailsFast(TestTensors.Float("neg2", [2, -2], 1f), "negative dimension -2");
        AssertDecodeFailsFast(TestTensors.Float("huge", [1L << 32, 1L << 32], 1f), "overflows 64 bits");
        AssertDecodeFailsFast(TestTensors.Float("huge3", [1L << 21, 1L << 21, 1L << 21], 1f), "overflows 64 bits");
        AssertFormatError(() => TensorData.ElementCount([long.MaxValue, 2], "t"), "overflows");
        AssertFormatError(() => OnnxDataTypes.ByteCount(OnnxDataType.Float, long.MaxValue / 2), "2^63 bytes");
        Assert.Equal(1L << 61, OnnxDataTypes.ByteCount(OnnxDataType.Float, 1L << 59));
    }

    [Fact]
    public void UnsupportedElementTypes_FailAsFormatErrors()
    {
        var s = TestTensors.Header("s", [1], OnnxDataType.String);
        s.StringData.Add(ByteString.CopyFromUtf8("a"));
        AssertFormatError(() => TensorData.ToFloatArray(s), "no numeric payload");
        AssertFormatError(() => TensorData.ToFloatArray(TestTensors.Raw("u", [1], (OnnxDataType)999, [1])), "no numeric payload");
        AssertFormatError(() => TensorData.ToFloatArray(TestTensors.Raw("f8", [1], OnnxDataType.Float8E4M3FN, [1])), "cannot be read as numbers");
        AssertFormatError(() => TensorData.ToInt64Array(TestTensors.Float("f", [1], 1f)), "not an integer type");
    }

    // ---- recursion --------------------------------------------------------------------------

    private static GraphBuilder Nested(int depth)
    {
        var g = TestModels.Graph($"level{depth}").ConstantFloat($"v{depth}", depth);
        if (depth == 0) return g.Output($"v{depth}", OnnxDataType.Float);
        return g.If("c", [$"o{depth}"], Nested(depth - 1), TestModels.Graph($"else{depth}").ConstantFloat($"e{depth}", -1f).Output($"e{depth}", OnnxDataType.Float), name: $"if{depth}")
            .Output($"o{depth}", OnnxDataType.Float);
    }

    private static byte[] NestedIfModel(int depth)
    {
        var body = Nested(depth).BuildGraph();
        var b = TestModels.Model().Input("c", OnnxDataType.Bool).Edit(g =>
        {
            g.Node.AddRange(body.Node);
            g.Output.AddRange(body.Output);
        });
        return b.ToBytes();
    }

    [Fact]
    public void RecursionBomb_IsRefused()
    {
        // Each If level nests NodeProto → AttributeProto → GraphProto: three messages deeper.
        var shallow = ModelGraph.FromBytes(NestedIfModel(10));
        Assert.Equal(1 + 2 * 10, shallow.Scopes.Count());
        AssertLoadFails(NestedIfModel(40), "not a readable ONNX model");
        AssertFormatError(() => ModelGraph.FromBytes(NestedIfModel(10), new ModelReadOptions { RecursionLimit = 20 }), "not a readable ONNX model");
        AssertLoadFails(NestedHeaders(30_000));
    }

    // A bomb written by hand: model.graph → graph.node → node.attribute → attribute.g → graph.node ...,
    // `levels` messages deep, each header giving the exact length of everything inside it.
    private static byte[] NestedHeaders(int levels)
    {
        byte[] tags = [0x0A, 0x2A, 0x32]; // GraphProto.node, NodeProto.attribute, AttributeProto.g
        var sizes = new long[levels + 1]; // sizes[k]: bytes of the k innermost messages
        for (int k = 1; k <= levels; k++) sizes[k] = 1 + VarintLength(sizes[k - 1]) + sizes[k - 1];
        var bytes = new List<byte> { 0x08, 0x08 }; // ir_version 8
        for (int k = levels; k >= 1; k--)
        {
            bytes.Add(k == levels ? (byte)0x3A : tags[(levels - k - 1) % 3]); // ModelProto.graph outermost
            for (ulong v = (ulong)sizes[k - 1]; ; v >>= 7)
            {
                if (v < 0x80) { bytes.Add((byte)v); break; }
                bytes.Add((byte)(v | 0x80));
            }
        }
        return [.. bytes];

        static int VarintLength(long v) { int n = 1; while (v >= 0x80) { v >>= 7; n++; } return n; }
    }
}
