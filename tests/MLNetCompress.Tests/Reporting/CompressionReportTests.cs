using System.Text.Json;
using MLNetCompress.Clustering;
using MLNetCompress.Compression;
using MLNetCompress.Evaluation;
using MLNetCompress.LowRank;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Pruning;
using MLNetCompress.Quantization;
using MLNetCompress.Reporting;
using MLNetCompress.Testing;
using static MLNetCompress.Tests.Pruning.PruningChecks;

namespace MLNetCompress.Tests.Reporting;

/// <summary>The report's figures against values computed here another way: file lengths, weights decoded by hand from the written file.</summary>
public class CompressionReportTests
{
    private const OnnxDataType F = OnnxDataType.Float;

    /// <summary>x[3,64] · W1[64,128] → Relu → · W2[128,32], deterministic weights.</summary>
    private static byte[] TwoLayerModel(string w1Name = "W1") =>
        TestModels.Model().Input("x", F, "batch", 64)
            .Initializer(TestTensors.Random(w1Name, [64, 128], 1))
            .Initializer(TestTensors.Random("W2", [128, 32], 2))
            .Node("MatMul", ["x", w1Name], ["h"], name: "fc1").Node("Relu", ["h"], ["r"]).Node("MatMul", ["r", "W2"], ["y"], name: "fc2")
            .Output("y", F, "batch", 32).ToBytes();

    private static (CompressionResult Result, byte[] Output) Compress(byte[] model, string name, params IGraphPass[] passes)
    {
        var path = Path.Combine(RealModels.TempDir("report-" + name), name + ".onnx");
        var result = ModelCompressor.Compress(model, passes,
            new CompressionOptions { OutputPath = path, Verification = new VerifyOptions { MinCosine = 0.5 } });
        return (result, File.ReadAllBytes(path));
    }

    /// <summary>codebook[index] for uint8 indices, read from the written file without the library.</summary>
    private static (float[] Values, int Clusters) DecodeClustered(byte[] model, string name, int count)
    {
        var g = ModelProto.Parser.ParseFrom(model).Graph;
        var codebook = g.Initializer.Single(t => t.Name == name + "_codebook");
        var book = new float[codebook.Dims[0]];
        Buffer.BlockCopy(codebook.RawData.ToByteArray(), 0, book, 0, book.Length * 4);
        var indices = g.Initializer.Single(t => t.Name == name + "_indices");
        Assert.Equal((int)OnnxDataType.UInt8, indices.DataType);
        var idx = indices.RawData.ToByteArray();
        return (Enumerable.Range(0, count).Select(i => book[idx[i]]).ToArray(), book.Length);
    }

    [Fact]
    public void PrunedThenClustered_OneRowPerWeight_FiguresMatchTheWrittenFile()
    {
        var original = TwoLayerModel();
        var (result, output) = Compress(original, "prune-cluster",
            new MagnitudePruningPass(new PruningOptions { Sparsity = 0.5 }),
            new KMeansClusteringPass(new KMeansClusteringOptions { Clusters = 32 }));

        var report = CompressionReport.Build(original, output, result);

        Assert.Equal(original.Length, report.BytesBefore);
        Assert.Equal(new FileInfo(result.OutputPath).Length, report.BytesAfter);
        Assert.Equal(output.Length, report.BytesAfter);
        Assert.Equal(2, report.Layers.Count); // two passes, one row per weight
        var w1 = report.Layers.Single(l => l.Weight == "W1");
        Assert.Equal(2, w1.Steps.Count);
        Assert.Equal("MatMul", w1.OpType);
        Assert.Equal(64 * 128, w1.Params);
        Assert.Equal(w1.Params, w1.ParamsAfter);

        var before = Weights(original)["W1"].Values;
        var (after, clusters) = DecodeClustered(output, "W1", before.Length);
        Assert.Equal(clusters, w1.Clusters);
        Assert.Equal(8, w1.Bits);
        Assert.Equal(0, w1.SparsityBefore);
        Assert.Equal(after.Count(v => v == 0) / (double)after.Length, w1.SparsityAfter!.Value, 12);
        Assert.True(w1.SparsityAfter >= 0.5);

        double maxAbs = 0, diff = 0, norm = 0;
        for (int i = 0; i < before.Length; i++)
        {
            double d = after[i] - (double)before[i];
            maxAbs = Math.Max(maxAbs, Math.Abs(d));
            diff += d * d;
            norm += (double)before[i] * before[i];
        }
        Assert.Equal("weights", w1.ErrorSource);
        Assert.Equal(maxAbs, w1.MaxAbsError, 6);
        Assert.Equal(Math.Sqrt(diff / norm), w1.RelativeError!.Value, 6);
        Assert.Equal(8.0 * w1.BytesAfter / w1.Params, w1.BitsPerWeight, 12);

        var h = w1.Histogram!;
        Assert.Equal(before.Length, h.Before.Sum());
        Assert.Equal(before.Length, h.After!.Sum());
        Assert.True(h.After!.Count(c => c > 0) <= clusters, "after clustering the values fall in at most K bins");
        Assert.Equal(Math.Min(before.Min(), after.Min()), h.Min, 6);
        Assert.Equal(Math.Max(before.Max(), after.Max()), h.Max, 6);
        Assert.Empty(report.Notes);
    }

    [Fact]
    public void SparseStorage_SparsityIsReadFromTheSparseInitializer()
    {
        var original = File.ReadAllBytes(RealModels.MlpSample);
        var (result, output) = Compress(original, "sparse",
            new MagnitudePruningPass(new PruningOptions { Sparsity = 0.9 }), new SparseStoragePass());

        var report = CompressionReport.Build(original, output, result);

        var sparse = ModelProto.Parser.ParseFrom(output).Graph.SparseInitializer;
        Assert.NotEmpty(sparse);
        foreach (var s in sparse)
        {
            var layer = report.Layers.Single(l => l.Weight == s.Values.Name);
            long count = s.Dims.Aggregate(1L, (a, b) => a * b);
            // Every stored value is non-zero (the encoder keeps only those), so the zeros are count − nnz.
            Assert.Equal(1 - (double)s.Values.Dims[0] / count, layer.SparsityAfter!.Value, 12);
            Assert.Equal(count, layer.Histogram!.After!.Sum());
            Assert.Equal(s.Values.RawData.Length + s.Indices.RawData.Length, layer.BytesAfter);
        }
    }

    [Fact]
    public void Int8Storage_OnTheCnn_ErrorMatchesWhatThePassMeasured()
    {
        var original = File.ReadAllBytes(RealModels.CnnSample);
        var (result, output) = Compress(original, "int8", new Int8WeightStoragePass());

        var report = CompressionReport.Build(original, output, result);

        Assert.Equal(result.Layers.Count, report.Layers.Count);
        foreach (var layer in report.Layers)
        {
            var change = result.Layers.Single(c => c.Weight == layer.Weight);
            Assert.Equal(8, layer.Bits);
            Assert.Null(layer.Clusters);
            // The pass measured its error on its own arrays; the report on what ONNX Runtime computes from the file.
            Assert.Equal(change.MaxAbsError, layer.MaxAbsError, 1e-6 * Math.Max(1, change.MaxAbsError));
            Assert.Equal(layer.Params, layer.Histogram!.Before.Sum());
            Assert.Equal(layer.Params, layer.Histogram.After!.Sum());
        }
    }

    [Fact]
    public void Qdq_WeightsAreReadThroughTheirDequantizeLinear_ErrorMatchesWhatThePassMeasured()
    {
        var original = TwoLayerModel();
        var feed = new MLNetCompress.Data.RandomFeed([new MLNetCompress.Data.ModelInputInfo("x", Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float, [-1, 64])], rows: 32);
        var (result, output) = Compress(original, "qdq", new MLNetCompress.Quantization.Qdq.QdqQuantizationPass(
            new MLNetCompress.Quantization.Qdq.QdqOptions { Calibration = feed, KeepFloatWhereSlower = false }));

        var report = CompressionReport.Build(original, output, result);

        // The readers now read DequantizeLinear outputs: the weights' old names are gone from the file.
        var initializers = ModelProto.Parser.ParseFrom(output).Graph.Initializer.Select(t => t.Name).ToHashSet();
        Assert.Equal(2, report.Layers.Count);
        foreach (var layer in report.Layers)
        {
            Assert.DoesNotContain(layer.Weight, initializers);
            var change = result.Layers.Single(c => c.Weight == layer.Weight);
            Assert.Equal(8, layer.Bits);
            Assert.Equal("weights", layer.ErrorSource);
            Assert.Equal(change.MaxAbsError, layer.MaxAbsError, 1e-6 * Math.Max(1, change.MaxAbsError));
            Assert.Equal(layer.Params, layer.Histogram!.After!.Sum());
        }
    }

    [Fact]
    public void LowRank_ReportsRanksAndFactorParameters_AndSaysWhyThereIsNoHistogramAfter()
    {
        // W1 = A·B of rank 8, so a rank-16 split keeps it (a random matrix has no good low-rank approximation).
        var a = TestTensors.RandomValues(64 * 8, 5);
        var b = TestTensors.RandomValues(8 * 128, 6);
        var w1 = new float[64 * 128];
        for (int i = 0; i < 64; i++)
            for (int j = 0; j < 128; j++)
                for (int k = 0; k < 8; k++) w1[i * 128 + j] += a[i * 8 + k] * b[k * 128 + j];
        var original = WithWeights(TwoLayerModel(), new Dictionary<string, float[]> { ["W1"] = w1 });
        var (result, output) = Compress(original, "lowrank", new LowRankPass(new LowRankOptions { RankRatio = 0.25 }));

        var report = CompressionReport.Build(original, output, result);

        var layer1 = report.Layers.Single(l => l.Weight == "W1");
        Assert.Equal([16], layer1.Ranks!);  // a quarter of min(64, 128)
        Assert.Equal(16L * (64 + 128), layer1.ParamsAfter);
        Assert.Equal([8], report.Layers.Single(l => l.Weight == "W2").Ranks!);
        Assert.Contains(report.Notes, n => n.Contains("W1", StringComparison.Ordinal));
        foreach (var layer in report.Layers)
        {
            var change = result.Layers.Single(c => c.Weight == layer.Weight);
            Assert.NotNull(layer.Ranks);
            Assert.Equal(change.Ranks, layer.Ranks);
            Assert.Equal(change.BytesAfter / 4, layer.ParamsAfter);
            Assert.True(layer.ParamsAfter <= layer.Params / 2);
            Assert.Null(layer.Histogram!.After);
            Assert.Equal(layer.Params, layer.Histogram.Before.Sum());
            Assert.Equal("pass", layer.ErrorSource);
        }
    }

    [Fact]
    public void Evaluation_IsTheComparersTable_AndJsonFieldNamesAreStable()
    {
        var original = TwoLayerModel();
        var (result, output) = Compress(original, "json", new MagnitudePruningPass(new PruningOptions { Sparsity = 0.3 }));
        var feed = new MLNetCompress.Data.RandomFeed([new MLNetCompress.Data.ModelInputInfo("x", Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float, [-1, 64])], rows: 16);
        var eval = ModelComparer.Compare(original, output, feed, new EvalOptions { BatchSize = 8, WarmupRuns = 0, MinLatencySamples = 1 });

        var report = CompressionReport.Build(original, output, result, eval);

        Assert.NotNull(report.Evaluation);
        Assert.Equal(eval.LatencyRatio, report.Evaluation.LatencyRatio);
        Assert.Equal(eval.Outputs[0].MeanCosine, report.Evaluation.Outputs[0].MeanCosine);
        using var json = JsonDocument.Parse(ReportWriter.ToJson(report));
        var root = json.RootElement;
        Assert.Equal(CompressionReport.SchemaVersion, root.GetProperty("schema").GetString());
        Assert.Equal(original.Length, root.GetProperty("bytesBefore").GetInt64());
        Assert.Equal(output.Length, root.GetProperty("bytesAfter").GetInt64());
        var layer = root.GetProperty("layers")[0];
        foreach (var field in new[] { "weight", "op", "shape", "bytesBefore", "bytesAfter", "params", "sparsityAfter", "clusters", "bits", "ranks", "maxAbsError", "histogram" })
            Assert.True(layer.TryGetProperty(field, out _), $"layer field '{field}' missing");
        var evaluation = root.GetProperty("evaluation");
        foreach (var field in new[] { "latencyBeforeMs", "latencyAfterMs", "latencyRatio", "outputs" })
            Assert.True(evaluation.TryGetProperty(field, out _), $"evaluation field '{field}' missing");
        Assert.Equal(ReportWriter.ToJson(report), ReportWriter.ToJson(ReportWriter.FromJson(ReportWriter.ToJson(report))));
    }

    [Fact]
    public void Histogram_CountsEveryFiniteValue_InSharedBins()
    {
        float[] before = [-1, -0.5f, 0, 0, 0.25f, 1];
        float[] after = [-2, 0, 0, 0, 0, 2];
        var h = WeightHistogram.Of(before, after, bins: 4);
        Assert.Equal(-2, h.Min);
        Assert.Equal(2, h.Max);
        Assert.Equal(new long[] { 0, 2, 3, 1 }, h.Before);   // [-2,-1) [-1,0) [0,1) [1,2]
        Assert.Equal(new long[] { 1, 0, 4, 1 }, h.After);
        var constant = WeightHistogram.Of([3f, 3f, float.NaN], bins: 5);
        Assert.Equal(2, constant.Before.Sum());
        Assert.Null(constant.After);
    }
}
