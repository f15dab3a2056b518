using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.Storage;
using MLNetCompress.Testing;
using Microsoft.ML.OnnxRuntime;
using static MLNetCompress.Tests.Quantization.Storage.StorageReference;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Quantization.Storage;

/// <summary>The low-bit storage pass on small models built in code: layouts, expansion forms per opset, folding, exact outputs.</summary>
public class WeightStoragePassTests
{
    private const OnnxDataType F = OnnxDataType.Float;

    private static ModelBuilder ConvModel(long opset, long ir) =>
        TestModels.Model(opset, ir)
            .Input("x", F, 1, 8, 6, 6)
            .Initializer(TestTensors.Random("W", [16, 8, 3, 3], 1))
            .Initializer(TestTensors.Random("B", [16], 2))
            .Node("Conv", ["x", "W", "B"], ["h"], Attr.Ints("pads", 1, 1, 1, 1))
            .Node("Relu", ["h"], ["y"])
            .Output("y", F, 1, 16, 6, 6);

    private static ModelBuilder MatMulModel(long opset, long ir) =>
        TestModels.Model(opset, ir)
            .Input("x", F, 4, 40)
            .Initializer(TestTensors.Random("W", [40, 48], 1))
            .Node("MatMul", ["x", "W"], ["y"])
            .Output("y", F, 4, 48);

    private static ModelBuilder GemmModel(long opset, long ir) =>
        TestModels.Model(opset, ir)
            .Input("x", F, 4, 40)
            .Initializer(TestTensors.Random("W", [48, 40], 1))
            .Initializer(TestTensors.Random("C", [48], 2))
            .Node("Gemm", ["x", "W", "C"], ["y"], Attr.Int("transB", 1))
            .Output("y", F, 4, 48);

    public static TheoryData<string, long, long, StorageFormat, int?, bool, StorageExpansion, string> Cases => new()
    {
        // model, opset, IR, format, block, per-channel, expected expansion, expected node chain before the weight op
        { "conv", 13, 8, StorageFormat.Int8, null, true, StorageExpansion.CastInt8, "Cast Mul Reshape" },
        { "conv", 13, 8, StorageFormat.Int4, null, true, StorageExpansion.LookupTable, "Cast Gather Reshape Mul Reshape" },
        // 72 values per channel in blocks of 16: 5 blocks, padded to 80, sliced back (Slice with inputs).
        { "conv", 21, 10, StorageFormat.Int4, 16, true, StorageExpansion.CastInt4, "Cast Mul Reshape Slice Reshape" },
        // IR 3 / opset 8 like ResNet18: Slice with attributes.
        { "conv", 8, 3, StorageFormat.Int2, 32, true, StorageExpansion.LookupTable, "Cast Gather Reshape Mul Reshape Slice Reshape" },
        { "conv", 13, 8, StorageFormat.Binary, null, true, StorageExpansion.LookupTable, "Cast Gather Reshape Mul Reshape" },
        // MatMul: channels are columns, so storage is transposed back.
        { "matmul", 13, 8, StorageFormat.Binary, null, true, StorageExpansion.LookupTable, "Cast Gather Reshape Mul Reshape Transpose Reshape" },
        { "matmul", 13, 8, StorageFormat.Int4, 16, true, StorageExpansion.LookupTable, "Cast Gather Reshape Mul Reshape Slice Reshape Transpose Reshape" },
        { "matmul", 21, 10, StorageFormat.Int4, 8, true, StorageExpansion.CastInt4, "Cast Mul Reshape Transpose Reshape" },
        { "gemm", 13, 8, StorageFormat.Int2, null, false, StorageExpansion.LookupTable, "Cast Gather Reshape Mul Reshape" },
        { "gemm", 7, 3, StorageFormat.Int4, 8, true, StorageExpansion.LookupTable, "Cast Gather Reshape Mul Reshape" },
        // Asymmetric: the offsets (−zp · scale) are added after the scales.
        { "conv", 13, 8, StorageFormat.UInt8, null, true, StorageExpansion.CastUInt8, "Cast Mul Add Reshape" },
        { "conv", 13, 8, StorageFormat.UInt4, null, true, StorageExpansion.LookupTable, "Cast Gather Reshape Mul Add Reshape" },
        { "conv", 21, 10, StorageFormat.UInt4, 16, true, StorageExpansion.CastUInt4, "Cast Mul Add Reshape Slice Reshape" },
        { "conv", 8, 3, StorageFormat.UInt4, 32, true, StorageExpansion.LookupTable, "Cast Gather Reshape Mul Add Reshape Slice Reshape" },
        { "matmul", 13, 8, StorageFormat.UInt8, null, true, StorageExpansion.CastUInt8, "Cast Mul Add Reshape Transpose Reshape" },
        { "matmul", 13, 8, StorageFormat.UInt4, 16, true, StorageExpansion.LookupTable, "Cast Gather Reshape Mul Add Reshape Slice Reshape Transpose Reshape" },
        { "gemm", 13, 8, StorageFormat.UInt8, null, false, StorageExpansion.CastUInt8, "Cast Mul Add Reshape" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void StoredWeight_MatchesTheFormula_FoldsInOrt_AndOutputsEqualTheDequantizedReference(
        string model, long opset, long ir, StorageFormat format, int? block, bool perChannel, StorageExpansion expansion, string chain)
    {
        var builder = model switch { "conv" => ConvModel(opset, ir), "matmul" => MatMulModel(opset, ir), _ => GemmModel(opset, ir) };
        if (ir < 4) builder.InitializersAsInputs();
        var bytes = builder.ToBytes();
        var original = ModelGraph.FromBytes(bytes);
        var w = TensorData.ToFloatArray(original.Main.Initializer("W")!);
        var dims = original.Main.Initializer("W")!.Dims.ToArray();
        int? axis = !perChannel ? null : model switch { "conv" => 0, "matmul" => 1, _ => 0 };

        var graph = ModelGraph.FromBytes(bytes);
        var pass = new WeightStoragePass(new WeightStorageOptions { Format = format, BlockSize = block, PerChannel = perChannel });
        var result = PassManager.Run(graph, [pass])[0];
        Assert.True(result.Modified, string.Join("; ", result.Skipped));
        Assert.Null(GraphInvariants.FindViolation(graph));
        Assert.Equal(expansion, pass.ExpansionFor(opset, ir));
        string weightOp = model switch { "conv" => "Conv", "matmul" => "MatMul", _ => "Gemm" };
        Assert.Equal(chain + " " + weightOp, string.Join(" ", graph.Main.Nodes.Select(n => n.OpType).TakeWhile(op => op != "Relu")));
        Assert.Equal(opset, graph.OnnxOpset); // never rewritten

        // (1) the stored bytes, read back and decoded by hand, are the formula's quantization of W.
        var stored = Read(graph, "W", format);
        Assert.Equal(expansion == StorageExpansion.LookupTable, stored.LookupTable);
        var reference = Dequantize(stored, dims, axis);
        AssertBound(w, reference, stored, dims, axis, format);

        // (2) ONNX Runtime folds the expansion: same ops as the float model, float initializers only, and the
        // folded weight is bit for bit the hand-dequantized reference.
        var path = Path.Combine(RealModels.TempDir("storage"), $"{model}-{format}-{opset}-{block}.onnx");
        graph.Save(path);
        var originalPath = Path.Combine(RealModels.TempDir("storage"), $"{model}-{opset}-original.onnx");
        File.WriteAllBytes(originalPath, bytes);
        foreach (var level in new[] { GraphOptimizationLevel.ORT_ENABLE_BASIC, GraphOptimizationLevel.ORT_ENABLE_EXTENDED })
        {
            var optimized = AssertFoldedToFloat(path, originalPath, level);
            var folded = optimized.Main.Initializers.Where(t => t.Dims.SequenceEqual(dims)).ToList();
            Assert.Equal(reference, TensorData.ToFloatArray(Assert.Single(folded)));
        }

        // (3) outputs equal, exactly, those of the float model given the reference weights.
        long[] shape = model == "conv" ? [1, 8, 6, 6] : [4, 40];
        var inputs = new Dictionary<string, NamedTensor> { ["x"] = new NamedTensor(Gaussian((int)shape.Aggregate(1L, (a, b) => a * b), 5), shape) };
        AssertExactlyEqual(Run(WithWeights(bytes, new Dictionary<string, float[]> { ["W"] = reference }), inputs), Run(graph.ToBytes(), inputs));
    }

    /// <summary>
    /// Loads both models in ONNX Runtime at <paramref name="level"/> and asserts that the stored model's optimized graph
    /// has the same ops as the float model's (no Cast/Gather/Mul/Reshape/Slice/Transpose of the expansion left) and no
    /// initializer but float ones of a type the float model's optimized graph does not have.
    /// </summary>
    internal static ModelGraph AssertFoldedToFloat(string path, string originalPath, GraphOptimizationLevel level)
    {
        var optimized = OptimizedByOrt(path, level);
        var baseline = OptimizedByOrt(originalPath, level);
        Assert.Equal(OpCounts(baseline), OpCounts(optimized));
        var baselineTypes = baseline.Scopes.SelectMany(s => s.Initializers).Select(t => t.DataType).ToHashSet();
        foreach (var t in optimized.Scopes.SelectMany(s => s.Initializers))
            Assert.True(t.DataType == (int)F || baselineTypes.Contains(t.DataType),
                $"initializer '{t.Name}' of type {OnnxDataTypes.Name(OnnxDataTypes.FromWire(t.DataType))} is left after ONNX Runtime's {level} optimizations");
        Assert.DoesNotContain(optimized.Scopes.SelectMany(s => s.Initializers), t => t.Name.StartsWith("weight_storage_", StringComparison.Ordinal));
        return optimized;
    }

    internal static string OpCounts(ModelGraph graph) =>
        string.Join(", ", graph.Scopes.SelectMany(s => s.Nodes).GroupBy(n => n.OpType).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key}x{g.Count()}"));

    [Theory]
    [InlineData(StorageFormat.UInt8)]
    [InlineData(StorageFormat.UInt4)]
    public void Asymmetric_ExactZerosOfAPrunedWeight_StayExactlyZero_AfterOrtFolds(StorageFormat format)
    {
        // A Conv weight with a third of its values pruned to 0 (and one channel all zeros).
        var w = TestTensors.RandomValues(16 * 8 * 3 * 3, 9);
        for (int i = 0; i < w.Length; i += 3) w[i] = 0;
        Array.Clear(w, 5 * 72, 72);
        var bytes = ConvModel(13, 8).ToBytes();
        bytes = WithWeights(bytes, new Dictionary<string, float[]> { ["W"] = w });
        var graph = ModelGraph.FromBytes(bytes);
        Assert.True(PassManager.Run(graph, [new WeightStoragePass(new WeightStorageOptions { Format = format })])[0].Modified);
        long[] dims = [16, 8, 3, 3];
        var stored = Read(graph, "W", format);
        var reference = Dequantize(stored, dims, 0);
        AssertBound(w, reference, stored, dims, 0, format); // asserts every 0 comes back as exactly 0
        Assert.Equal(0f, stored.Offsets![5]); // the all-zero channel: scale 1, zero point 0
        var path = Path.Combine(RealModels.TempDir("storage"), $"pruned-{format}.onnx");
        graph.Save(path);
        var originalPath = Path.Combine(RealModels.TempDir("storage"), "pruned.onnx");
        File.WriteAllBytes(originalPath, bytes);
        var folded = TensorData.ToFloatArray(Assert.Single(AssertFoldedToFloat(path, originalPath, GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
            .Main.Initializers, t => t.Dims.SequenceEqual(dims)));
        for (int i = 0; i < w.Length; i++)
            if (w[i] == 0) Assert.True(BitConverter.SingleToInt32Bits(folded[i]) == 0, $"W[{i}] = 0 folded to {folded[i]}");
        Assert.Equal(reference, folded);
    }

    [Fact]
    public void Opset21_WithoutNativeInt4_UsesTheLookupTable_AndTablesAreShared()
    {
        var graph = TestModels.Model(21, 10).Input("x", F, 4, 40)
            .Initializer(TestTensors.Random("W1", [40, 48], 1))
            .Initializer(TestTensors.Random("W2", [48, 40], 2))
            .Node("MatMul", ["x", "W1"], ["h"])
            .Node("MatMul", ["h", "W2"], ["y"])
            .Output("y", F, 4, 40).ToGraph();
        var pass = new WeightStoragePass(new WeightStorageOptions { Format = StorageFormat.Int4, UseNativeInt4 = false });
        Assert.True(PassManager.Run(graph, [pass])[0].Modified);
        Assert.Equal(2, graph.Main.Nodes.Count(n => n.OpType == "Gather"));
        Assert.Single(graph.Main.Initializers, t => t.Name.StartsWith("weight_storage_int4_table", StringComparison.Ordinal));
        Assert.DoesNotContain(graph.Main.Initializers, t => t.DataType == (int)OnnxDataType.Int4);
    }

    [Fact]
    public void Float16Weight_IsStoredAndCastBack_AndFolds()
    {
        var values = TestTensors.RandomValues(40 * 48, 7);
        var raw = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++) BitConverter.TryWriteBytes(raw.AsSpan(i * 2), (Half)values[i]);
        var bytes = TestModels.Model().Input("x", F, 4, 40)
            .Initializer(TestTensors.Raw("W16", [40, 48], OnnxDataType.Float16, raw))
            .Node("Cast", ["W16"], ["W"], Attr.Int("to", (long)F))
            .Node("MatMul", ["x", "W"], ["y"])
            .Output("y", F, 4, 48).ToBytes();
        var graph = ModelGraph.FromBytes(bytes);
        var result = PassManager.Run(graph, [new WeightStoragePass(new WeightStorageOptions { Format = StorageFormat.Int4 })])[0];
        Assert.Contains(result.Changes, c => c.StartsWith("W16 (MatMul in main): float16[40,48] -> int4 per-channel (axis 1)", StringComparison.Ordinal));
        Assert.Equal("Cast", graph.Main.Producer("W16")!.OpType);
        var path = Path.Combine(RealModels.TempDir("storage"), "fp16.int4.onnx");
        graph.Save(path);
        var originalPath = Path.Combine(RealModels.TempDir("storage"), "fp16.onnx");
        File.WriteAllBytes(originalPath, bytes);
        AssertFoldedToFloat(path, originalPath, GraphOptimizationLevel.ORT_ENABLE_EXTENDED);
        var inputs = new Dictionary<string, NamedTensor> { ["x"] = new NamedTensor(Gaussian(160, 3), [4, 40]) };
        Assert.True(Cosine(Run(bytes, inputs)[0], Run(graph.ToBytes(), inputs)[0]) > 0.98);
    }

    [Fact]
    public void Opset6_IsLeftAloneWithAReasonNamingTheUpgrade()
    {
        var graph = ConvModel(6, 3).ToGraph();
        var result = PassManager.Run(graph, [new WeightStoragePass(new WeightStorageOptions { Format = StorageFormat.Binary })])[0];
        Assert.False(result.Modified);
        var reason = Assert.Single(result.Skipped);
        Assert.Contains("opset 6", reason, StringComparison.Ordinal);
        Assert.Contains("upgrade", reason, StringComparison.Ordinal);
        Assert.NotNull(graph.Main.Initializer("W"));
        Assert.Equal(6, graph.OnnxOpset);
    }

    [Fact]
    public void Preview_ReportsSizesAndLayers()
    {
        var graph = ConvModel(13, 8).ToGraph();
        var plan = new WeightStoragePass(new WeightStorageOptions { Format = StorageFormat.Int4, BlockSize = 32 }).Preview(graph);
        var w = Assert.Single(plan.Weights);
        // 72 values per channel in blocks of 32: 3 blocks, padded to 96 -> 16 x 96 / 2 bytes + 48 scales.
        Assert.Equal((0, 3, 96), (w.Axis!.Value, w.Layout.Blocks, w.Layout.Padded));
        Assert.Equal(16 * 72 * 4, w.BytesBefore);
        Assert.Equal(16 * 96 / 2 + 48 * 4, w.BytesAfter);
        Assert.Equal("int4 per-channel (axis 0), blocks of 32 + 48 float scales, lookup table", w.StorageAfter);
        Assert.NotNull(graph.Main.Initializer("W"));
    }

    [Fact]
    public void ConstantNodeWeightInsideAnIfBranch_StaysInItsBranch_AndRunsInOrt()
    {
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
        var result = PassManager.Run(graph, [new WeightStoragePass(new WeightStorageOptions { Format = StorageFormat.Int4 })])[0];
        Assert.Equal(2, result.Changes.Count);
        var then = graph.Scopes.Single(s => s.Path.EndsWith("then_branch", StringComparison.Ordinal));
        // The branch keeps its weight in Constant nodes; the one lookup table lives in the main graph.
        Assert.Contains(then.Nodes, n => n.OpType == "Constant" && n.Output[0].StartsWith("Wt_int4_packed", StringComparison.Ordinal));
        Assert.Single(graph.Main.Initializers, t => t.Name.StartsWith("weight_storage_int4_table", StringComparison.Ordinal));
        var w = TensorData.ToFloatArray(GraphScope.ConstantNodeTensor(ModelGraph.FromBytes(bytes).Scopes
            .Single(s => s.Path.EndsWith("then_branch", StringComparison.Ordinal)).Nodes[0])!);
        var stored = Read(graph, "Wt", StorageFormat.Int4);
        AssertBound(w, Dequantize(stored, [32, 48], 1), stored, [32, 48], 1, StorageFormat.Int4);
        foreach (float c in new[] { 1f, -1f })
        {
            var inputs = new Dictionary<string, NamedTensor> { ["x"] = new NamedTensor(Gaussian(128, 3), [4, 32]), ["c"] = new NamedTensor([c], [1]) };
            Assert.True(Cosine(Run(bytes, inputs)[0], Run(graph.ToBytes(), inputs)[0]) > 0.99);
        }
    }

    [Fact]
    public void ExcludedNodes_KeepTheirWeightsFloat_WithAReason()
    {
        var graph = TestModels.Model().Input("x", F, 4, 40)
            .Initializer(TestTensors.Random("W1", [40, 48], 1))
            .Initializer(TestTensors.Random("W2", [48, 40], 2))
            .Node("MatMul", ["x", "W1"], ["h"], "first")
            .Node("MatMul", ["h", "W2"], ["y"], "second")
            .Output("y", F, 4, 40).ToGraph();
        var options = new WeightStorageOptions { Format = StorageFormat.Int4, ExcludeNodes = new HashSet<string> { "second" } };
        var result = PassManager.Run(graph, [new WeightStoragePass(options)])[0];
        Assert.Null(graph.Main.Initializer("W1"));
        Assert.NotNull(graph.Main.Initializer("W2"));
        Assert.Contains("'second' is excluded", Assert.Single(result.Skipped), StringComparison.Ordinal);
    }

    [Fact]
    public void Options_AreValidated()
    {
        Assert.Throws<ArgumentException>(() => new WeightStoragePass(new WeightStorageOptions { BlockSize = 12 }));
        Assert.Throws<ArgumentException>(() => new WeightStoragePass(new WeightStorageOptions { BlockSize = 0 }));
        Assert.Throws<ArgumentException>(() => new WeightStoragePass(new WeightStorageOptions { BlockSize = 32, PerChannel = false }));
        Assert.Throws<ArgumentException>(() => new WeightStoragePass(new WeightStorageOptions { Ops = new HashSet<string> { "LSTM" } }));
        Assert.Throws<ArgumentException>(() => new WeightStoragePass(new WeightStorageOptions { Format = (StorageFormat)9 }));
        Assert.Throws<ArgumentException>(() => new WeightStoragePass(new WeightStorageOptions { Format = StorageFormat.UInt4, Clip = true }));
        Assert.True(StorageFormats.TryParse("UINT4", out var u4) && u4 == StorageFormat.UInt4);
        Assert.True(StorageFormats.TryParse("uint8", out var u8) && u8 == StorageFormat.UInt8);
        Assert.True(StorageFormats.TryParse("BINARY", out var f) && f == StorageFormat.Binary);
        Assert.False(StorageFormats.TryParse("int3", out _));
    }
}
