using MLNetCompress.Calibration;
using MLNetCompress.Clustering;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Preparation;
using MLNetCompress.Quantization.Dynamic;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Recipes;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Xunit.Abstractions;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Quantization;

/// <summary>
/// Weight sharing composed with quantization: a clustered weight (index tensor + float codebook, gathered back) keeps
/// its index tensor through static QDQ and dynamic quantization — only its k centroids become int8 — and ONNX Runtime
/// still folds the Gather and fuses the quantized kernels. Values are checked against the clustering pass's own
/// codebook and indices, quantized here with plain loops.
/// </summary>
public class ClusteredQuantizationTests(ITestOutputHelper output)
{
    private const OnnxDataType F = OnnxDataType.Float;

    /// <summary>Values in [-1, 1) with each output channel (along <paramref name="axis"/>) scaled by a different
    /// factor, so per-channel scales differ, as in trained layers.</summary>
    private static TensorProto Weight(string name, long[] dims, int axis, int seed)
    {
        var v = TestTensors.RandomValues((int)dims.Aggregate(1L, (a, b) => a * b), seed);
        long inner = dims.Skip(axis + 1).Aggregate(1L, (a, b) => a * b);
        for (int i = 0; i < v.Length; i++)
        {
            long c = i / inner % dims[axis];
            v[i] *= 0.05f + (c % 7) / 7f;
        }
        return TestTensors.Float(name, dims, v);
    }

    /// <summary>x[N,3,8,8] → Conv(16)+Relu → Conv(16)+Relu → MaxPool → Flatten → Gemm(10, transB): W2 (2,304 values) and
    /// W3 (2,560) are large enough to be clustered, W1 (432) stays a plain weight.</summary>
    private static ModelGraph SmallCnn(long opset, long ir) =>
        TestModels.Model(opset, ir)
            .Input("x", F, "batch", 3, 8, 8)
            .Initializer(Weight("W1", [16, 3, 3, 3], 0, 1))
            .Initializer("b1", [16], TestTensors.RandomValues(16, 2).Select(v => v * 0.1f).ToArray())
            .Initializer(Weight("W2", [16, 16, 3, 3], 0, 3))
            .Initializer("b2", [16], TestTensors.RandomValues(16, 4).Select(v => v * 0.1f).ToArray())
            .Initializer(Weight("W3", [10, 256], 0, 5))
            .Initializer(TestTensors.Random("b3", [10], 6))
            .Node("Conv", ["x", "W1", "b1"], ["c1"], "conv1", "", Attr.Ints("pads", 1, 1, 1, 1))
            .Node("Relu", ["c1"], ["r1"], name: "relu1")
            .Node("Conv", ["r1", "W2", "b2"], ["c2"], "conv2", "", Attr.Ints("pads", 1, 1, 1, 1))
            .Node("Relu", ["c2"], ["r2"], name: "relu2")
            .Node("MaxPool", ["r2"], ["p"], "pool", "", Attr.Ints("kernel_shape", 2, 2), Attr.Ints("strides", 2, 2))
            .Node("Flatten", ["p"], ["f"], name: "flatten")
            .Node("Gemm", ["f", "W3", "b3"], ["y"], "fc", "", Attr.Int("transB", 1))
            .Output("y", F, "batch", 10)
            .ToGraph();

    private static IDataFeed Feed(byte[] model, int rows = 48, int seed = 1)
    {
        using var runner = ModelRunner.Load(model);
        return new RandomFeed(runner.Inputs, rows, seed);
    }

    /// <summary>Clusters the graph in place; returns each clustered weight's values as codebook[index] (the pass's plan).</summary>
    private static Dictionary<string, (float[] Values, int Clusters)> Cluster(ModelGraph graph, int k)
    {
        var pass = new KMeansClusteringPass(new KMeansClusteringOptions { Clusters = k });
        var plan = pass.Preview(graph);
        PassManager.Run(graph, [pass]);
        return plan.Layers.ToDictionary(l => l.Name, l => (l.Indices.Select(i => l.Codebook[i]).ToArray(), l.Codebook.Count));
    }

    private static ModelGraph Optimized(ModelGraph graph, string name)
    {
        var path = Path.Combine(RealModels.TempDir("clustered-qdq"), name + ".onnx");
        File.WriteAllBytes(path, graph.ToBytes());
        return OptimizedByOrt(path);
    }

    /// <summary>
    /// The int8 weight and scales a fused node reads in ONNX Runtime's optimized graph (input 3 and 4 of QLinearConv,
    /// QGemm and DynamicQuantizeMatMul's B at 1 with its scale at 2), checked against the clustered values: scale = max|w|/127
    /// per output channel (or per tensor), widened by the default pair-sum guard only as far as its bound needs
    /// (<see cref="PairSafeChecks"/>), q = round(w / scale); and at most k distinct int8 values per channel.
    /// </summary>
    private static void AssertFusedWeight(ModelGraph optimized, string op, int weightInput, int scaleInput, float[] clustered,
        long[] dims, int? axis, int k, int outputAxis)
    {
        var node = optimized.Main.Nodes.Single(n => n.OpType == op && optimized.Main.Initializer(n.Input[weightInput]) is { } t
                                                                   && TensorData.ElementCount(t.Dims.ToArray()) == clustered.Length);
        var qTensor = optimized.Main.Initializer(node.Input[weightInput])!;
        Assert.Equal((int)OnnxDataType.Int8, qTensor.DataType);
        var q = TensorData.ToFloatArray(qTensor);
        var scales = TensorData.ToFloatArray(optimized.Main.Initializer(node.Input[scaleInput])!);
        int channels = axis is int a ? (int)dims[a] : 1;
        long inner = axis is int ax ? dims.Skip(ax + 1).Aggregate(1L, (x, y) => x * y) : clustered.Length;
        Assert.Equal(channels, scales.Length);
        var distinct = Enumerable.Range(0, channels).Select(_ => new HashSet<float>()).ToArray();
        // The pair bound holds per output channel (one accumulator), whether it has its own scale or shares one.
        int outputs = (int)dims[outputAxis];
        long outputInner = dims.Skip(outputAxis + 1).Aggregate(1L, (x, y) => x * y);
        var groups = Enumerable.Range(0, outputs).Select(_ => (Weights: new List<float>(), Codes: new List<float>())).ToArray();
        for (int i = 0; i < clustered.Length; i++)
        {
            int c = (int)(i / inner % channels);
            var g = groups[(int)(i / outputInner % outputs)];
            g.Weights.Add(clustered[i]);
            g.Codes.Add(q[i]);
            distinct[c].Add(q[i]);
        }
        if (axis is null)
            PairSafeChecks.AssertChannels(groups.Select(g => ((IReadOnlyList<float>)g.Weights, (IReadOnlyList<float>)g.Codes)).ToList(), scales[0]);
        else
            for (int c = 0; c < channels; c++) PairSafeChecks.AssertChannel(groups[c].Weights, scales[c], groups[c].Codes);
        Assert.All(distinct, d => Assert.InRange(d.Count, 1, k));
    }

    /// <summary>The file holds, for each clustered weight, its index tensor and an int8 codebook of k entries per scale,
    /// and no tensor as large as a weight in float or int8 (no dense copy).</summary>
    private static void AssertIndexTensorAndInt8Codebook(ModelGraph graph, string weight, long count, int k, int channels)
    {
        var inits = graph.Main.Proto.Initializer;
        Assert.Contains(inits, t => t.Name.StartsWith(weight + "_codebook_int8", StringComparison.Ordinal)
                                    && t.DataType == (int)OnnxDataType.Int8 && TensorData.ElementCount(t.Dims.ToArray()) == (long)k * channels);
        // The index tensor: uint8 one a value, or 4-bit (uint4, or nibble pairs in half as many bytes).
        Assert.Contains(inits, t => t.Name.StartsWith(weight + "_", StringComparison.Ordinal)
                                    && (t.DataType is (int)OnnxDataType.UInt8 or (int)OnnxDataType.UInt4)
                                    && TensorData.ElementCount(t.Dims.ToArray()) is var n && (n == count || n == (count + 1) / 2));
        // No dense copy: nothing in float or int8 holds as many values as the weight, other than codebooks of other layers.
        Assert.DoesNotContain(inits, t => t.DataType is (int)OnnxDataType.Float or (int)OnnxDataType.Int8
                                          && TensorData.ElementCount(t.Dims.ToArray()) == count && !t.Name.Contains("_codebook_int8", StringComparison.Ordinal));
        Assert.DoesNotContain(graph.Main.Nodes, n => n.OpType == "Gather" && graph.Main.Initializer(n.Input[0]) is { DataType: (int)OnnxDataType.Float });
    }

    [Theory]
    [InlineData(13L, 8L, 16, true)]   // 4-bit nibble pairs (BitShift), per-channel
    [InlineData(21L, 10L, 16, true)]  // uint4 indices, per-channel
    [InlineData(21L, 10L, 16, false)] // uint4 indices, per-tensor
    [InlineData(13L, 8L, 64, false)]  // uint8 indices, per-tensor
    [InlineData(13L, 8L, 64, true)]   // uint8 indices, per-channel
    public void StaticQdq_KeepsTheIndexTensor_QuantizesTheCodebook_AndOrtFuses(long opset, long ir, int k, bool perChannel)
    {
        var graph = SmallCnn(opset, ir);
        var clustered = Cluster(graph, k);
        Assert.Equal(["W2", "W3"], clustered.Keys.Order());
        var clusteredBytes = graph.ToBytes();

        var pass = new QdqQuantizationPass(new QdqOptions { Calibration = Feed(clusteredBytes), PerChannel = perChannel, KeepFloatWhereSlower = false });
        var result = PassManager.Run(graph, [pass])[0];
        Assert.True(result.Modified);
        var plan = pass.LastPlan!;
        Assert.Equal(k, plan.Weights.Single(w => w.Name == "W2").Clusters);
        Assert.Null(plan.Weights.Single(w => w.Name == "W1").Clusters);
        var rows = plan.Weights.Where(w => w.Name is "W2" or "W3").Select(w => w.ToLayerChange()).ToList();
        Assert.Equal(2, rows.Count);
        Assert.All(rows, l => Assert.Contains("clustered, codebook quantized", l.StorageAfter, StringComparison.Ordinal));
        // Indices (1 byte, or half) plus k int8 centroids per scale: well under half of float, and about the clustered size.
        Assert.All(rows, l => Assert.True(l.BytesAfter < 2L * l.Shape.Aggregate(1L, (a, b) => a * b), $"{l.Weight}: {l.BytesAfter} bytes"));
        Assert.All(rows, l => Assert.True(l.BytesAfter <= l.BytesBefore + (perChannel ? 16L * (k + 9) : 5), $"{l.Weight}: {l.BytesBefore} -> {l.BytesAfter} bytes"));
        output.WriteLine(string.Join(Environment.NewLine, result.Changes));

        AssertIndexTensorAndInt8Codebook(graph, "W2", 16 * 16 * 9, k, perChannel ? 16 : 1);
        AssertIndexTensorAndInt8Codebook(graph, "W3", 10 * 256, k, perChannel ? 10 : 1);

        var optimized = Optimized(graph, $"cnn-{opset}-{k}-{perChannel}");
        var ops = optimized.Main.Nodes.Select(n => n.OpType).ToHashSet(StringComparer.Ordinal);
        output.WriteLine($"optimized ops: {string.Join(", ", ops.Order())}");
        Assert.Contains("QLinearConv", ops);
        Assert.Contains("QGemm", ops);
        Assert.DoesNotContain("Conv", ops);
        Assert.DoesNotContain("Gemm", ops);
        Assert.DoesNotContain("Gather", ops);
        int? axis = perChannel ? 0 : null;
        AssertFusedWeight(optimized, "QLinearConv", 3, 4, clustered["W2"].Values, [16, 16, 3, 3], axis, k, outputAxis: 0);
        AssertFusedWeight(optimized, "QGemm", 3, 4, clustered["W3"].Values, [10, 256], axis, k, outputAxis: 0);

        var report = ModelComparer.Compare(clusteredBytes, graph.ToBytes(), Feed(clusteredBytes, 64, 2),
            new EvalOptions { WarmupRuns = 0, MinLatencySamples = 1 });
        output.WriteLine($"cosine vs the clustered float model {report.Outputs[0].MeanCosine:F5}");
        Assert.True(report.Outputs[0].MeanCosine > 0.99, $"cosine {report.Outputs[0].MeanCosine}");
    }

    [Fact]
    public void StaticQdq_ThroughPreparation_KeepsUInt8AndUInt4Indices()
    {
        // The recipe runs constant folding first: Cast of low-bit indices is kept, so the clusters reach the quantizer.
        var graph = SmallCnn(21, 10);
        Cluster(graph, 16);
        var bytes = graph.ToBytes();
        var passes = QdqRecipe.Passes(graph.OnnxOpset, new QdqOptions { Calibration = Feed(bytes), KeepFloatWhereSlower = false });
        PassManager.Run(graph, passes);
        Assert.Equal(2, ((QdqQuantizationPass)passes[^1]).LastPlan!.Weights.Count(w => w.Clusters == 16));
        AssertIndexTensorAndInt8Codebook(graph, "W3", 10 * 256, 16, 10);
    }

    /// <summary>x[6,64] → MatMul W1[64,48] → Relu → MatMul W2[48,40] → y, with channel-scaled weights.</summary>
    private static ModelGraph TwoMatMuls() =>
        TestModels.Model(13)
            .Input("x", F, "rows", 64)
            .Initializer(Weight("W1", [64, 48], 1, 1))
            .Initializer(Weight("W2", [48, 40], 1, 2))
            .Node("MatMul", ["x", "W1"], ["h"], "mm1")
            .Node("Relu", ["h"], ["r"], name: "relu")
            .Node("MatMul", ["r", "W2"], ["y"], "mm2")
            .Output("y", F, "rows", 40)
            .ToGraph();

    [Theory]
    [InlineData(16, true)]
    [InlineData(32, false)]
    public void Dynamic_KeepsTheIndexTensor_QuantizesTheCodebook_AndOrtFuses(int k, bool perChannel)
    {
        var graph = TwoMatMuls();
        var clustered = Cluster(graph, k);
        Assert.Equal(["W1", "W2"], clustered.Keys.Order());
        var clusteredBytes = graph.ToBytes();

        var pass = new DynamicQuantizationPass(new DynamicQuantizationOptions { PerChannel = perChannel });
        var plan = pass.Preview(graph);
        Assert.Equal(2, plan.MatMuls.Count(m => m.Clusters == k && m.ToLayerChange().StorageAfter.Contains("clustered, codebook quantized", StringComparison.Ordinal)));
        var result = PassManager.Run(graph, [pass])[0];
        Assert.True(result.Modified);
        AssertIndexTensorAndInt8Codebook(graph, "W1", 64 * 48, k, perChannel ? 48 : 1);
        AssertIndexTensorAndInt8Codebook(graph, "W2", 48 * 40, k, perChannel ? 40 : 1);

        var optimized = Optimized(graph, $"mlp-dynamic-{k}-{perChannel}");
        var ops = optimized.Main.Nodes.Select(n => n.OpType).ToHashSet(StringComparer.Ordinal);
        output.WriteLine($"optimized ops: {string.Join(", ", ops.Order())}");
        Assert.True(ops.Contains("DynamicQuantizeMatMul") || ops.Contains("MatMulIntegerToFloat"), string.Join(", ", ops));
        Assert.DoesNotContain("MatMul", ops);
        Assert.DoesNotContain("Gather", ops);
        // DynamicQuantizeMatMul(A, B, b_scale, b_zero_point, bias) / MatMulIntegerToFloat(A, B, a_scale, b_scale, ...).
        string fused = ops.Contains("DynamicQuantizeMatMul") ? "DynamicQuantizeMatMul" : "MatMulIntegerToFloat";
        int scaleInput = fused == "DynamicQuantizeMatMul" ? 2 : 3;
        int? axis = perChannel ? 1 : null;
        AssertFusedWeight(optimized, fused, 1, scaleInput, clustered["W1"].Values, [64, 48], axis, k, outputAxis: 1);

        var report = ModelComparer.Compare(clusteredBytes, graph.ToBytes(), Feed(clusteredBytes, 64, 2),
            new EvalOptions { WarmupRuns = 0, MinLatencySamples = 1 });
        output.WriteLine($"cosine vs the clustered float model {report.Outputs[0].MeanCosine:F5}");
        Assert.True(report.Outputs[0].MeanCosine > 0.99, $"cosine {report.Outputs[0].MeanCosine}");
    }

    [Fact]
    public void CnnSample_RecipeClusterThenQuantizeStatic_KeepsClustersAndAccuracy_AndFuses()
    {
        // The bundled sample and subset through the recipe runner: opset 21 (so 16 centroids take uint4 indices), k-means,
        // then the static int8 step, which runs preparation again before quantizing.
        var path = RealModels.CnnSample;
        using var runner = ModelRunner.Load(path);
        var train = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:train", runner.Session);
        var test = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:test", runner.Session);
        var recipe = Recipe.Parse("""
            {"name": "cluster-then-int8", "steps": [
              {"step": "prepare", "opset": 21},
              {"step": "cluster", "clusters": 16},
              {"step": "quantize-static", "perChannel": true, "keepFloatWhereSlower": false, "calibrationSettings": {"maxRows": 128, "batchSize": 32}}]}
            """);
        var outPath = Path.Combine(RealModels.TempDir("clustered-qdq"), "cnn.k16.int8.onnx");
        var result = RecipeRunner.Run(path, recipe, new RecipeRunOptions { OutputPath = outPath, Calibration = train });
        output.WriteLine($"{result.BytesBefore:N0} -> {result.BytesAfter:N0} bytes ({result.CompressionRatio:F2}x)");
        foreach (var l in result.Layers) output.WriteLine($"{l.Weight}: {l.StorageAfter}, {l.BytesBefore} -> {l.BytesAfter} bytes");

        // Every layer the cluster step shared is reported by the quantize step as clustered with a quantized codebook.
        var clusteredNames = result.Layers.Where(l => l.StorageAfter.StartsWith("uint4 indices", StringComparison.Ordinal)).Select(l => l.Weight).ToList();
        Assert.Equal(3, clusteredNames.Count);
        Assert.Equal(clusteredNames.Order(), result.Layers.Where(l => l.StorageAfter.StartsWith("clustered, codebook quantized: 16 int8", StringComparison.Ordinal))
            .Select(l => l.Weight).Order());
        var graph = ModelGraph.Load(outPath);
        foreach (var l in result.Layers.Where(l => l.StorageAfter.StartsWith("clustered", StringComparison.Ordinal)))
            AssertIndexTensorAndInt8Codebook(graph, l.Weight, l.Shape.Aggregate(1L, (a, b) => a * b), 16, (int)l.Shape[0]);
        // 4-bit indices plus small codebooks: about twice as small as plain int8 (3.9x).
        Assert.True(result.CompressionRatio > 7, $"{result.CompressionRatio:F2}x");

        var ops = OptimizedByOrt(outPath).Main.Nodes.Select(n => n.OpType).ToHashSet(StringComparer.Ordinal);
        Assert.Contains("QLinearConv", ops);
        Assert.Contains("QGemm", ops);
        Assert.DoesNotContain("Gather", ops);

        var report = ModelComparer.Compare(File.ReadAllBytes(path), File.ReadAllBytes(outPath), test,
            new EvalOptions { BatchSize = 100, WarmupRuns = 0, MinLatencySamples = 1 });
        var logits = report.Outputs[0];
        output.WriteLine($"accuracy fp32 {logits.BaselineAccuracy:P1} -> clustered int8 {logits.CandidateAccuracy:P1}, agreement {logits.Top1Agreement:P1}");
        Assert.InRange(logits.CandidateAccuracy!.Value, logits.BaselineAccuracy!.Value - 0.01, 1.0);
    }
}
