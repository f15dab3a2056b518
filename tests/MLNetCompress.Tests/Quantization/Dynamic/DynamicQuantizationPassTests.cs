using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.Dynamic;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Microsoft.ML.OnnxRuntime;
using Xunit.Abstractions;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Quantization.Dynamic;

/// <summary>Dynamic quantization of MatMuls: ONNX Runtime's results against an independent reference,
/// ONNX Runtime's fusion, and MiniLM end to end.</summary>
public class DynamicQuantizationPassTests(ITestOutputHelper output)
{
    private const OnnxDataType F = OnnxDataType.Float;
    private const int Rows = 6, K = 64, Hidden = 48, N = 40;

    /// <summary>x[6,64] → MatMul W1[64,48] → Relu → MatMul W2[48,40] → y.</summary>
    private static ModelBuilder TwoLayers(long opset = 13) =>
        TestModels.Model(opset)
            .Input("x", F, Rows, K)
            .Initializer(TestTensors.Random("W1", [K, Hidden], 1))
            .Initializer(TestTensors.Random("W2", [Hidden, N], 2))
            .Node("MatMul", ["x", "W1"], ["h"], "mm1")
            .Node("Relu", ["h"], ["r"])
            .Node("MatMul", ["r", "W2"], ["y"], "mm2")
            .Output("y", F, Rows, N);

    private static readonly float[] X = Gaussian(Rows * K, 5);

    private static Dictionary<string, NamedTensor> Input() => new() { ["x"] = new NamedTensor(X, [Rows, K]) };

    private static PassResult RunPass(ModelGraph graph, DynamicQuantizationOptions? options = null) =>
        PassManager.Run(graph, [new DynamicQuantizationPass(options)])[0];

    /// <summary>The weight's int8 values and scales, found from the MatMulInteger that reads them.</summary>
    private static (float[] Q, float[] Scales) StoredWeight(ModelGraph graph, string weight)
    {
        var main = graph.Main;
        var q = main.Initializer(weight + "_quantized")!;
        Assert.Equal((int)OnnxDataType.Int8, q.DataType);
        var zp = TensorData.ToFloatArray(main.Initializer(weight + "_zero_point")!);
        Assert.All(zp, z => Assert.Equal(0f, z));
        return (TensorData.ToFloatArray(q), TensorData.ToFloatArray(main.Initializer(weight + "_scale")!));
    }

    /// <summary>
    /// The DynamicQuantizeLinear spec: scale = (max(0, max) − min(0, min)) / 255, zp = saturate(round(−min / scale))
    /// (half to even), q = saturate(round(x / scale) + zp); then Σ (a_q − zp)·w_q in integers, times a_scale·w_scale.
    /// </summary>
    private static float[] ReferenceLayer(float[] a, int rows, int k, int n, float[] wq, float[] wScales)
    {
        float min = Math.Min(0, a.Min()), max = Math.Max(0, a.Max());
        float scale = (max - min) / 255f;
        float zp = scale == 0 ? 0 : Math.Clamp(MathF.Round(-min / scale, MidpointRounding.ToEven), 0, 255);
        var aq = new int[a.Length];
        for (int i = 0; i < a.Length; i++)
            aq[i] = scale == 0 ? (int)zp : (int)Math.Clamp(MathF.Round(a[i] / scale, MidpointRounding.ToEven) + zp, 0, 255);
        var y = new float[rows * n];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < n; c++)
            {
                long sum = 0;
                for (int j = 0; j < k; j++) sum += (aq[r * k + j] - (int)zp) * (long)wq[j * n + c];
                float s = wScales.Length == 1 ? wScales[0] : wScales[c];
                y[r * n + c] = sum * (scale * s);
            }
        return y;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    [Trait("Category", "Int8Kernels")] // its numbers come from ONNX Runtime's integer kernels: CI runs it again without VNNI
    public void TwoLayers_OrtMatchesTheIndependentReference_AndStaysCloseToFloat(bool perChannel)
    {
        var bytes = TwoLayers().ToBytes();
        var graph = ModelGraph.FromBytes(bytes);
        var layers = new List<LayerChange>();
        var result = new DynamicQuantizationPass(new DynamicQuantizationOptions { PerChannel = perChannel })
            .Run(graph, new PassContext(), layers);
        Assert.True(result.Modified);
        Assert.Equal(2, layers.Count);
        Assert.DoesNotContain(graph.Main.Nodes, n => n.OpType == "MatMul");
        Assert.Equal(2, graph.Main.Nodes.Count(n => n.OpType == "MatMulInteger"));
        Assert.Null(graph.Main.Initializer("W1"));

        var (q1, s1) = StoredWeight(graph, "W1");
        var (q2, s2) = StoredWeight(graph, "W2");
        Assert.Equal(perChannel ? Hidden : 1, s1.Length);
        Assert.Equal(perChannel ? N : 1, s2.Length);

        var x = Input();
        var fp32 = Run(bytes, x)[0];
        var quantized = Run(graph.ToBytes(), x)[0];

        var h = ReferenceLayer(X, Rows, K, Hidden, q1, s1);
        for (int i = 0; i < h.Length; i++) h[i] = Math.Max(0, h[i]);
        var reference = ReferenceLayer(h, Rows, Hidden, N, q2, s2);
        float peak = reference.Max(MathF.Abs);
        double worst = 0;
        for (int i = 0; i < reference.Length; i++) worst = Math.Max(worst, Math.Abs(reference[i] - quantized[i]));
        output.WriteLine($"perChannel={perChannel}: max |ORT − reference| = {worst:G3} (peak {peak:G3}), cosine vs fp32 {Cosine(fp32, quantized):F6}");
        Assert.True(worst <= 1e-4 * peak, $"ORT differs from the reference by {worst} (peak {peak})");
        Assert.True(Cosine(fp32, quantized) > 0.995, $"cosine vs fp32 {Cosine(fp32, quantized)}");
    }

    [Theory]
    [InlineData(GraphOptimizationLevel.ORT_ENABLE_EXTENDED)]
    [InlineData(GraphOptimizationLevel.ORT_ENABLE_ALL)]
    public void OrtFusesTheRewrite(GraphOptimizationLevel level)
    {
        var graph = ModelGraph.FromBytes(TwoLayers().ToBytes());
        RunPass(graph);
        var path = Path.Combine(RealModels.TempDir("dynamic-quantization"), "two-layers.onnx");
        graph.Save(path);
        var ops = OptimizedByOrt(path, level).Scopes.SelectMany(s => s.Nodes).Select(n => n.OpType).ToList();
        output.WriteLine($"{level}: {string.Join(", ", ops)}");
        Assert.Equal(2, ops.Count(o => o is "DynamicQuantizeMatMul" or "MatMulIntegerToFloat"));
        Assert.DoesNotContain("MatMulInteger", ops);
        Assert.DoesNotContain("Cast", ops);
    }

    [Fact]
    public void BelowOpset11_IsRefusedWithAReason()
    {
        var graph = ModelGraph.FromBytes(TwoLayers(opset: 10).ToBytes());
        var result = RunPass(graph);
        Assert.False(result.Modified);
        Assert.Contains(result.Skipped, s => s.Contains("opset 11", StringComparison.Ordinal));
    }

    [Fact]
    public void ExcludedAndSmallWeights_StayFloat()
    {
        var graph = ModelGraph.FromBytes(TwoLayers().ToBytes());
        var result = RunPass(graph, new DynamicQuantizationOptions { ExcludeNodes = new HashSet<string> { "mm1" }, MinElements = 48 * 40 + 1 });
        Assert.False(result.Modified);
        Assert.Equal(2, graph.Main.Nodes.Count(n => n.OpType == "MatMul"));
        Assert.Contains(result.Skipped, s => s.Contains("excluded", StringComparison.Ordinal));
        Assert.Contains(result.Skipped, s => s.Contains("MinElements", StringComparison.Ordinal));
    }

    [Fact]
    public void MiniLm_AllWeightMatMulsRewritten_PooledOutputClose_AndShrinks()
    {
        var graph = ModelGraph.Load(RealModels.MiniLm);
        int weightMatMuls = graph.Main.Nodes.Count(n => n.OpType == "MatMul" && graph.Main.Initializer(n.Input[1]) is not null);
        var layers = new List<LayerChange>();
        var result = new DynamicQuantizationPass().Run(graph, new PassContext(), layers);
        Assert.True(result.Modified);
        Assert.Equal(36, weightMatMuls);
        Assert.Equal(36, layers.Count);
        Assert.Equal(36, graph.Main.Nodes.Count(n => n.OpType == "MatMulInteger"));
        Assert.DoesNotContain(graph.Main.Nodes, n => n.OpType == "MatMul" && graph.Main.Initializer(n.Input[1]) is not null);
        var path = Path.Combine(RealModels.TempDir("dynamic-quantization"), "minilm.dynamic.onnx");
        graph.Save(path);

        using var a = ModelRunner.Load(RealModels.MiniLm);
        using var b = ModelRunner.Load(path);
        using var vocab = File.OpenRead(RealModels.MiniLmVocab);
        var feed = new TextFeed(Path.Combine(RealModels.SamplesDir, "text", "sentences.txt"), vocab, a.Inputs, maxLength: 64);
        double minCosine = 1;
        int rows = 0;
        foreach (var batch in feed.Batches(8, 16))
        {
            var ya = a.Run(batch)["924"];
            var yb = b.Run(batch)["924"];
            for (int r = 0; r < ya.Rows; r++, rows++) minCosine = Math.Min(minCosine, Cosine(ya.Row(r), yb.Row(r)));
        }
        long before = OnnxModelIO.SizeOnDisk(RealModels.MiniLm), after = OnnxModelIO.SizeOnDisk(path);
        var fused = OptimizedByOrt(path, GraphOptimizationLevel.ORT_ENABLE_ALL).Scopes.SelectMany(s => s.Nodes)
            .GroupBy(n => n.OpType).Where(g => g.Key is "DynamicQuantizeMatMul" or "MatMulIntegerToFloat" or "MatMulInteger")
            .ToDictionary(g => g.Key, g => g.Count());
        output.WriteLine($"MiniLM: {rows} sentences, min pooled cosine {minCosine:F6}; {before} -> {after} bytes; fused {string.Join(", ", fused.Select(kv => $"{kv.Key}x{kv.Value}"))}");
        Assert.True(rows > 0);
        Assert.True(minCosine >= 0.99, $"min cosine {minCosine}");
        // Only the MatMul weights change (the 30522×384 word embeddings stay float): they shrink about 4×.
        long saved = layers.Sum(l => l.BytesBefore - l.BytesAfter);
        Assert.True(saved > 0.74 * layers.Sum(l => l.BytesBefore), $"saved {saved}");
        Assert.True(before - after >= 0.99 * saved, $"{before} -> {after}, expected to save {saved}");
    }
}
