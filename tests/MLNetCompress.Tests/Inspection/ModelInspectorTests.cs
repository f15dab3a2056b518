using Google.Protobuf;
using MLNetCompress.Inspection;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.Inspection;

public class ModelInspectorTests
{
    // Weights of the model below, kept as arrays so the expected sparsities are counted here, independently.
    private static readonly float[] ConvW = [0.5f, 0f, -0f, 1.5f, 2f, 0f];               // [3,2,1,1]
    private static readonly sbyte[] DqW = [2, 0, 5, 2, -1, 5, 7, 0, 5, 2, 0, 1];          // [4,3], zero points per column below
    private static readonly sbyte[] DqZeroPoints = [2, 0, 5];
    private static readonly sbyte[] CastW = [0, 3, -4, 0, 0, 9];                          // [3,2] behind Cast→Mul
    private static readonly float[] Codebook = [-0.5f, 0f, 0.25f, 1f];
    private static readonly byte[] CodeIndices = [1, 0, 2, 1, 3, 1, 0, 2];               // [4,2]; entry 1 is the zero
    private static readonly float[] ConstW = [0f, 1f, 2f, 3f];                            // [2,2] Constant node
    private static readonly float[] SubW = [1f, 0f, 0f, 0f, 1f, 0f, 0f, 0f];              // [4,2] inside the then branch

    /// <summary>
    /// A model that stores weights every way inspect must see through: an initializer (Conv), int8 behind
    /// DequantizeLinear with per-column zero points, int8 behind Cast→Mul (Gemm), indices into a codebook
    /// through Gather, a Constant node, and initializers / Constant nodes inside If branches. It also has a
    /// MatMul of two computed values (one through Mul with a constant: still not a weight), a com.microsoft
    /// node, and a node listed before the node that computes its input.
    /// </summary>
    private static ModelBuilder Sample()
    {
        var thenBranch = TestModels.Graph("then")
            .Initializer(TestTensors.Float("Wsub", [4, 2], SubW))
            .Node("MatMul", ["x", "Wsub"], ["t_out"], name: "then_mm")
            .OutputUnranked("t_out", OnnxDataType.Float);
        var elseBranch = TestModels.Graph("else")
            .Constant("Wels", TestTensors.Float("Wels", [4, 2], 1, 1, 1, 1, 1, 1, 1, 1))
            .Node("MatMul", ["x", "Wels"], ["e_out"], name: "else_mm")
            .OutputUnranked("e_out", OnnxDataType.Float);

        return TestModels.Model(opset: 13)
            .Opset("com.microsoft", 1)
            .Input("img", OnnxDataType.Float, 1, 2, 3, 3)
            .Input("x", OnnxDataType.Float, "batch", 4)
            .Input("cond", OnnxDataType.Bool)
            .Initializer(TestTensors.Float("W", [3, 2, 1, 1], ConvW))
            .Initializer(TestTensors.Int8("Wq", [4, 3], DqW))
            .Initializer(TestTensors.Float("Wq_scale", [3], 0.1f, 0.2f, 0.3f))
            .Initializer(TestTensors.Int8("Wq_zp", [3], DqZeroPoints))
            .Initializer(TestTensors.Int8("Wi", [3, 2], CastW))
            .Initializer(TestTensors.Float("Wi_scale", [], 0.05f))
            .Initializer(TestTensors.Float("codebook", [4], Codebook))
            .Initializer(TestTensors.UInt8("idx", [4, 2], CodeIndices))
            .Constant("Wk", TestTensors.Float("Wk", [2, 2], ConstW))
            .ConstantFloat("half", 0.5f)
            .Node("Conv", ["img", "W"], ["conv_out"], name: "conv")
            .Node("DequantizeLinear", ["Wq", "Wq_scale", "Wq_zp"], ["Wq_f"], name: "dq", domain: "", Attr.Int("axis", 1))
            .Node("MatMul", ["x", "Wq_f"], ["y1"], name: "mm_dq")
            .Node("Cast", ["Wi"], ["Wi_f"], name: "cast", domain: "", Attr.Int("to", (long)OnnxDataType.Float))
            .Node("Mul", ["Wi_f", "Wi_scale"], ["Wi_w"], name: "scale")
            .Node("Gemm", ["y1", "Wi_w"], ["y2"], name: "gemm")
            // Out of order on purpose: mm_code reads Wc before the Gather that computes it.
            .Node("MatMul", ["x", "Wc"], ["y3"], name: "mm_code")
            .Node("Gather", ["codebook", "idx"], ["Wc"], name: "gather")
            .Node("MatMul", ["y2", "Wk"], ["y4"], name: "mm_const")
            .Node("Transpose", ["x"], ["xT"], name: "xT")
            .Node("Mul", ["xT", "half"], ["xs"], name: "x_half")
            .Node("MatMul", ["x", "xs"], ["gram"], name: "mm_act")
            .Node("Gelu", ["y4"], ["g"], name: "gelu", domain: "com.microsoft")
            .If("cond", ["branch"], thenBranch, elseBranch, name: "if")
            .Output("conv_out", OnnxDataType.Float, 1, 3, 3, 3)
            .Output("y3", OnnxDataType.Float, "batch", 2)
            .Output("g", OnnxDataType.Float, "batch", 2)
            .Output("gram", OnnxDataType.Float, "batch", "batch")
            .OutputUnranked("branch", OnnxDataType.Float);
    }

    private static int Zeros(float[] v) => v.Count(x => x == 0f);

    private static LayerInfo Layer(InspectionReport r, string node) => Assert.Single(r.Layers, l => l.Node == node);

    [Fact]
    public void Header_Signature_AndOperators()
    {
        var r = ModelInspector.Inspect(Sample().ToGraph());
        Assert.Null(r.Path);
        Assert.Null(r.SizeOnDisk);
        Assert.Equal(8, r.IrVersion);
        Assert.Contains(new OpsetEntry("ai.onnx", 13), r.Opsets);
        Assert.Contains(new OpsetEntry("com.microsoft", 1), r.Opsets);
        Assert.Equal("ai.onnx", r.Opsets[0].Domain);
        Assert.Equal("MLNetCompress.Testing 1", r.Producer);

        Assert.Equal(["img", "x", "cond"], r.Inputs.Select(i => i.Name));
        Assert.Equal(["batch", "4"], r.Inputs[1].Shape);
        Assert.Equal("float[1,2,3,3]", r.Inputs[0].TypeText);
        Assert.Empty(r.Inputs[2].Shape!);
        Assert.Null(r.Outputs.Single(o => o.Name == "branch").Shape);

        // 6 MatMul: four in the main graph, one per If branch.
        Assert.Equal(6, r.Operators.Single(o => o.Op == "MatMul").Count);
        var gelu = r.Operators.Single(o => o.OpType == "Gelu");
        Assert.Equal("com.microsoft.Gelu", gelu.Op);
        Assert.Equal("com.microsoft", gelu.Domain);
        Assert.Equal(r.TotalNodes, r.Operators.Sum(o => o.Count));
        Assert.Equal(2, r.Subgraphs);
        Assert.Equal(r.TotalNodes - 3, r.MainGraphNodes); // then: MatMul; else: Constant + MatMul
    }

    [Fact]
    public void Parameters_AndWhereTheyLive()
    {
        var r = ModelInspector.Inspect(Sample().ToGraph());
        // Every constant, counted by hand: main initializers, main Constant nodes, then the two branches.
        long mainInit = ConvW.Length + DqW.Length + 3 + DqZeroPoints.Length + CastW.Length + 1 + Codebook.Length + CodeIndices.Length;
        long mainConst = ConstW.Length + 1;
        long sub = SubW.Length + 8;
        Assert.Equal(mainInit + mainConst + sub, r.Parameters.Total);
        Assert.Equal(new TensorGroup(8, mainInit, (ConvW.Length + 3 + 1 + Codebook.Length) * 4 + DqW.Length + DqZeroPoints.Length + CastW.Length + CodeIndices.Length), r.WeightLocations.Initializers);
        Assert.Equal(new TensorGroup(2, mainConst, mainConst * 4), r.WeightLocations.ConstantNodes);
        Assert.Equal(new TensorGroup(2, sub, sub * 4), r.WeightLocations.InSubgraphs);
        Assert.Equal(TensorGroup.Empty, r.WeightLocations.ExternalData);
        Assert.Equal(TensorGroup.Empty, r.WeightLocations.SparseInitializers);

        var int8 = r.Parameters.ByDataType.Single(t => t.DataType == "int8");
        Assert.Equal(new DataTypeStats("int8", 3, DqW.Length + DqZeroPoints.Length + CastW.Length, DqW.Length + DqZeroPoints.Length + CastW.Length), int8);
        Assert.Equal(r.Parameters.Total, r.Parameters.ByDataType.Sum(t => t.Parameters));
        Assert.Equal(r.Parameters.Bytes, r.Parameters.ByDataType.Sum(t => t.Bytes));
        Assert.Equal("float", r.Parameters.ByDataType[0].DataType); // largest first
    }

    [Fact]
    public void Layers_FollowStorageChainsToTheirConstant()
    {
        var r = ModelInspector.Inspect(Sample().ToGraph());
        Assert.Equal(["conv", "mm_dq", "gemm", "mm_code", "mm_const", "then_mm", "else_mm"], r.Layers.Select(l => l.Node));

        var conv = Layer(r, "conv");
        Assert.Equal(("Conv", "W", "float", "main"), (conv.Op, conv.Weight, conv.StorageType, conv.Graph));
        Assert.Equal([3L, 2, 1, 1], conv.Shape);
        Assert.Empty(conv.Via);
        Assert.Equal(6, conv.Parameters);
        Assert.Equal(24, conv.Bytes);
        Assert.Equal((double)Zeros(ConvW) / ConvW.Length, conv.Sparsity); // -0 counts as zero

        // int8 behind DequantizeLinear: a weight is zero where it equals its column's zero point.
        var dq = Layer(r, "mm_dq");
        Assert.Equal(("Wq", "int8"), (dq.Weight, dq.StorageType));
        Assert.Equal(["DequantizeLinear"], dq.Via);
        int dqZeros = DqW.Where((q, i) => q == DqZeroPoints[i % 3]).Count();
        Assert.Equal((double)dqZeros / DqW.Length, dq.Sparsity);
        Assert.Equal(12, dq.Bytes);

        var gemm = Layer(r, "gemm");
        Assert.Equal(("Gemm", "Wi", "int8"), (gemm.Op, gemm.Weight, gemm.StorageType));
        Assert.Equal(["Mul", "Cast"], gemm.Via);
        Assert.Equal((double)CastW.Count(v => v == 0) / CastW.Length, gemm.Sparsity);

        // Gather over a codebook: the stored weight is the index tensor; zero where it picks the zero entry.
        var code = Layer(r, "mm_code");
        Assert.Equal(("idx", "uint8"), (code.Weight, code.StorageType));
        Assert.Equal(["Gather"], code.Via);
        int zeroEntry = Array.IndexOf(Codebook, 0f);
        Assert.Equal((double)CodeIndices.Count(i => i == zeroEntry) / CodeIndices.Length, code.Sparsity);

        var constant = Layer(r, "mm_const");
        Assert.Equal("Wk", constant.Weight);
        Assert.Equal((double)Zeros(ConstW) / ConstW.Length, constant.Sparsity);

        var inThen = Layer(r, "then_mm");
        Assert.Equal("Wsub", inThen.Weight);
        Assert.Contains("then_branch", inThen.Graph);
        Assert.Equal((double)Zeros(SubW) / SubW.Length, inThen.Sparsity);
        Assert.Contains("else_branch", Layer(r, "else_mm").Graph);
        Assert.Equal(0, Layer(r, "else_mm").Sparsity);

        // x · (xᵀ * 0.5) multiplies two computed values even though one path passes a constant.
        Assert.DoesNotContain(r.Layers, l => l.Node == "mm_act");
    }

    [Fact]
    public void Notes_NameReorderingQuantizationAndUnweightedLayers()
    {
        var r = ModelInspector.Inspect(Sample().ToGraph());
        Assert.Contains(r.Notes, n => n.Contains("not in topological order"));
        Assert.Contains(r.Notes, n => n.StartsWith("already quantized: 1 DequantizeLinear node", StringComparison.Ordinal));
        Assert.Contains(r.Notes, n => n.StartsWith("1 MatMul node ", StringComparison.Ordinal) && n.Contains("no constant weight"));
        Assert.Contains(r.Notes, n => n.Contains("2 constants") && n.Contains("If/Loop/Scan"));
    }

    [Fact]
    public void ScalarZeroPoint_AndQuantizedLayerReadingItsWeightDirectly()
    {
        sbyte[] w = [3, 3, 0, 1, 3, -3];
        var model = TestModels.Model(opset: 13)
            .Input("x", OnnxDataType.UInt8, 1, 1, 2, 2)
            .Input("a", OnnxDataType.Float, 1, 3)
            .Initializer(TestTensors.Int8("w", [3, 2], w))
            .Initializer(TestTensors.Float("s", [], 0.5f))
            .Initializer(TestTensors.Int8("zp", [], 3))
            .Initializer(TestTensors.Int8("cw", [2, 1, 1, 1], 4, 0))
            .Initializer(TestTensors.Float("xs", [], 0.1f))
            .Initializer(TestTensors.UInt8("xz", [], 128))
            .Initializer(TestTensors.Int8("cwz", [2], 4, 1))
            .Initializer(TestTensors.Float("cws", [2], 0.1f, 0.1f))
            .Node("DequantizeLinear", ["w", "s", "zp"], ["wf"], name: "dq")
            .Node("MatMul", ["a", "wf"], ["y"], name: "mm")
            .Node("QLinearConv", ["x", "xs", "xz", "cw", "cws", "cwz", "xs", "xz"], ["c"], name: "qconv")
            .Output("y", OnnxDataType.Float, 1, 2)
            .Output("c", OnnxDataType.UInt8, 1, 2, 2, 2);
        var r = ModelInspector.Inspect(model.ToGraph());
        Assert.Equal((double)w.Count(v => v == 3) / w.Length, Layer(r, "mm").Sparsity);
        // QLinearConv reads int8 weights directly; per-output-channel zero points 4 and 1: channel 0 holds 4 (zero).
        var q = Layer(r, "qconv");
        Assert.Equal(("QLinearConv", "cw", "int8"), (q.Op, q.Weight, q.StorageType));
        Assert.Equal(0.5, q.Sparsity);
        Assert.Contains(r.Notes, n => n.StartsWith("already quantized: 2 DequantizeLinear/QLinearConv nodes (1 DequantizeLinear, 1 QLinearConv)", StringComparison.Ordinal));
    }

    [Fact]
    public void Ir3InitializersListedAsInputs_AreNotInputs_AndAreNoted()
    {
        var g = TestModels.Mlp().IrVersion(3).InitializersAsInputs().ToGraph();
        var r = ModelInspector.Inspect(g);
        Assert.Equal(["x"], r.Inputs.Select(i => i.Name));
        Assert.Contains(r.Notes, n => n.StartsWith("IR 3: 4 initializers are also listed as graph inputs", StringComparison.Ordinal));
        Assert.Equal(2, r.Layers.Count);
        Assert.Equal(g.Constants.Sum(c => c.ElementCount), r.Parameters.Total);
    }

    [Fact]
    public void FromFile_ReportsSizes_ExternalData_AndSparseInitializers()
    {
        var dir = RealModels.TempDir("inspect-external");
        var big = TestTensors.RandomValues(512, 3); // 2 KiB: above the 1 KiB external-data threshold
        var model = TestModels.Model(opset: 13)
            .Input("x", OnnxDataType.Float, "batch", 512)
            .Initializer(TestTensors.Float("W", [512, 1], big))
            .Node("MatMul", ["x", "W"], ["y"], name: "mm")
            .Output("y", OnnxDataType.Float, "batch", 1)
            .Edit(g =>
            {
                var sparse = new SparseTensorProto { Values = TestTensors.Float("S", [3], 1, 2, 3), Indices = TestTensors.Int64("S_idx", [3], 0, 4, 9) };
                sparse.Dims.Add(10);
                g.SparseInitializer.Add(sparse);
            });
        var path = Path.Combine(dir, "m.onnx");
        model.ToGraph().Save(path, new ModelWriteOptions { ExternalData = ExternalDataMode.Always });
        Assert.True(File.Exists(path + ".data"));

        var r = ModelInspector.Inspect(path);
        Assert.Equal(Path.GetFullPath(path), r.Path);
        Assert.Equal(new FileInfo(path).Length, r.FileBytes);
        Assert.Equal(new FileInfo(path).Length + new FileInfo(path + ".data").Length, r.SizeOnDisk);
        Assert.Equal(new TensorGroup(1, 512, 2048), r.WeightLocations.ExternalData);
        Assert.Equal(["m.onnx.data"], r.WeightLocations.ExternalFiles);
        Assert.Equal(new TensorGroup(1, 3, 3 * 4 + 3 * 8), r.WeightLocations.SparseInitializers);
        Assert.Equal(512 + 3, r.Parameters.Total);
        Assert.Contains(r.Notes, n => n.Contains("external data") && n.Contains("m.onnx.data"));
        Assert.Equal(512, Layer(r, "mm").Parameters);
    }

    [Fact]
    public void Json_RoundTrips_InCamelCase()
    {
        var r = ModelInspector.Inspect(Sample().ToGraph());
        var json = r.ToJson();
        Assert.Contains("\"irVersion\": 8", json);
        Assert.Contains("\"weightLocations\"", json);
        Assert.Contains("\"sparsity\"", json);
        Assert.DoesNotContain("typeText", json);
        var back = InspectionReport.FromJson(json);
        Assert.Equal(json, back.ToJson());
        Assert.Equal(r.Layers.Count, back.Layers.Count);
        Assert.Equal(r.Layers[1].Via, back.Layers[1].Via);
    }

    [Fact]
    public void BadFiles_AreOnnxFormatExceptions()
    {
        var dir = RealModels.TempDir("inspect-bad");
        Assert.Throws<OnnxFormatException>(() => ModelInspector.Inspect(Path.Combine(dir, "missing.onnx")));
        var empty = Path.Combine(dir, "empty.onnx");
        File.WriteAllBytes(empty, []);
        Assert.Throws<OnnxFormatException>(() => ModelInspector.Inspect(empty));
        var truncated = Path.Combine(dir, "truncated.onnx");
        var bytes = TestModels.Mlp().ToBytes();
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        Assert.Throws<OnnxFormatException>(() => ModelInspector.Inspect(truncated));
    }

    [Fact]
    public void ZeroCounting_MatchesAScalarCount_ForEveryFloatWidth()
    {
        float[] values = [0f, -0f, 1f, float.Epsilon, -2f, 0f, float.NaN];
        int expected = values.Count(v => v == 0f);
        var f32 = TestTensors.Float("f", [values.Length], values);
        Assert.Equal(expected, ZeroCounting.CountZeros(OnnxDataType.Float, f32.RawData.Span, values.Length));
        var halves = values.Select(v => (Half)v).ToArray();
        var raw16 = new byte[halves.Length * 2];
        for (int i = 0; i < halves.Length; i++) BitConverter.TryWriteBytes(raw16.AsSpan(i * 2), BitConverter.HalfToUInt16Bits(halves[i]));
        Assert.Equal(halves.Count(h => h == (Half)0), ZeroCounting.CountZeros(OnnxDataType.Float16, raw16, halves.Length));
        var doubles = values.Select(v => (double)v).ToArray();
        var raw64 = new byte[doubles.Length * 8];
        for (int i = 0; i < doubles.Length; i++) BitConverter.TryWriteBytes(raw64.AsSpan(i * 8), doubles[i]);
        Assert.Equal(expected, ZeroCounting.CountZeros(OnnxDataType.Double, raw64, doubles.Length));
        // int4: two per byte, first in the low nibble: values 0, -1, 0, 7.
        byte[] packed = [0xF0, 0x70];
        Assert.Equal(2, ZeroCounting.CountZeros(OnnxDataType.Int4, packed, 4));
        Assert.Equal(1, ZeroCounting.CountEqual(OnnxDataType.Int4, packed, 0, 4, -1));
    }
}
