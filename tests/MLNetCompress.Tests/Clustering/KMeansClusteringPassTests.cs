using MLNetCompress.Clustering;
using MLNetCompress.Compression;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Pruning;
using MLNetCompress.Testing;
using MLNetCompress.Tests.Quantization;
using static MLNetCompress.Tests.Pruning.PruningChecks;

namespace MLNetCompress.Tests.Clustering;

public class KMeansClusteringPassTests
{
    private const OnnxDataType F = OnnxDataType.Float;

    /// <summary>x[3,64] · W1[64,128] → Relu → · W2[128,32], W1 with 60% exact zeros.</summary>
    private static ModelBuilder Model(long opset = 13, long ir = 8)
    {
        var w1 = TestTensors.RandomValues(64 * 128, 1);
        for (int i = 0; i < w1.Length; i++) if (Math.Abs(w1[i]) < 0.6f) w1[i] = 0;
        return TestModels.Model(opset, ir).Input("x", F, 3, 64)
            .Initializer(TestTensors.Float("W1", [64, 128], w1))
            .Initializer(TestTensors.Random("W2", [128, 32], 2))
            .Node("MatMul", ["x", "W1"], ["h"]).Node("Relu", ["h"], ["r"]).Node("MatMul", ["r", "W2"], ["y"])
            .Output("y", F, 3, 32);
    }

    /// <summary>
    /// The weight the stored tensors encode, decoded here from the file: codebook[index], with indices read as
    /// uint8, as uint4 (first value in the low nibble), or as nibble pairs (value i low, value i + ⌈n/2⌉ high in byte i).
    /// </summary>
    private static float[] Decode(byte[] model, string name, int count)
    {
        var g = ModelProto.Parser.ParseFrom(model).Graph;
        var all = g.Initializer.Concat(g.SparseInitializer.Select(s => Densify(s))).ToDictionary(t => t.Name);
        var codebook = TensorData.ToFloatArray(all[name + "_codebook"]);
        var idx = new int[count];
        if (all.TryGetValue(name + "_nibbles", out var p))
        {
            var bytes = p.RawData.ToByteArray();
            int h = (count + 1) / 2;
            for (int i = 0; i < count; i++) idx[i] = i < h ? bytes[i] & 0xF : bytes[i - h] >> 4;
        }
        else
        {
            var t = all[name + "_indices"];
            var bytes = t.RawData.ToByteArray();
            for (int i = 0; i < count; i++)
                idx[i] = t.DataType == (int)OnnxDataType.UInt4 ? (bytes[i / 2] >> (4 * (i % 2))) & 0xF : bytes[i];
        }
        return idx.Select(i => codebook[i]).ToArray();
    }

    private static TensorProto Densify(SparseTensorProto s)
    {
        var values = s.Values.RawData.ToByteArray();
        var indices = TensorData.ToFloatArray(s.Indices);
        int size = values.Length / indices.Length, count = (int)s.Dims.Aggregate(1L, (a, b) => a * b);
        var dense = new byte[count * size];
        for (int k = 0; k < indices.Length; k++) Array.Copy(values, k * size, dense, (int)indices[k] * size, size);
        var t = new TensorProto { Name = s.Values.Name, DataType = s.Values.DataType, RawData = Google.Protobuf.ByteString.CopyFrom(dense) };
        t.Dims.AddRange(s.Dims);
        return t;
    }

    [Theory]
    [InlineData(13L, 8L, 16, ClusterIndexStorage.PackedNibbles)]
    [InlineData(21L, 10L, 16, ClusterIndexStorage.UInt4)]
    [InlineData(13L, 8L, 40, ClusterIndexStorage.UInt8)]
    [InlineData(9L, 8L, 16, ClusterIndexStorage.UInt8)]
    public void Clustered_ZerosStay_EachWeightTakesItsNearestCentroid_AndOrtEqualsTheDecodedWeights(long opset, long ir, int k, ClusterIndexStorage storage)
    {
        var model = Model(opset, ir).ToBytes();
        var graph = ModelGraph.FromBytes(model);
        var pass = new KMeansClusteringPass(new KMeansClusteringOptions { Clusters = k, MinElements = 0, Seed = 3 });
        var plan = pass.Preview(graph);
        PassManager.Run(graph, [pass]);
        var clustered = graph.ToBytes();

        var before = Weights(model);
        foreach (var layer in plan.Layers)
        {
            Assert.Equal(storage, layer.Storage);
            Assert.True(layer.Codebook.Count <= k);
            var w = before[layer.Name].Values;
            var decoded = Decode(clustered, layer.Name, w.Length);
            var nonZeroCentroids = layer.Codebook.Where((c, j) => !(layer.Zeros > 0 && j == 0)).ToArray();
            for (int i = 0; i < w.Length; i++)
            {
                if (w[i] == 0) { Assert.Equal(0f, decoded[i]); continue; }
                double d = Math.Abs(w[i] - decoded[i]);
                Assert.All(nonZeroCentroids, c => Assert.True(d <= Math.Abs(w[i] - (double)c) + 1e-7, $"{layer.Name}[{i}] = {w[i]} took {decoded[i]}, {c} is nearer"));
            }
        }
        Assert.Equal(before["W1"].Values.Count(v => v == 0), plan.Layers.Single(l => l.Name == "W1").Zeros);
        var reference = WithWeights(model, plan.Layers.ToDictionary(l => l.Name, l => Decode(clustered, l.Name, before[l.Name].Values.Length)));
        AssertSameOrtOutputs(reference, clustered, "x", [3, 64]);
    }

    [Fact]
    public void SameSeed_GivesTheSameModelBytes()
    {
        byte[] Run(int seed)
        {
            var g = Model().ToGraph();
            PassManager.Run(g, [new KMeansClusteringPass(new KMeansClusteringOptions { Clusters = 8, Seed = seed, MinElements = 0 })]);
            return g.ToBytes();
        }
        Assert.Equal(Run(5), Run(5));
    }

    [Fact]
    public void OrtFoldsTheCodebookAtLoad_IntoAFloatInitializer()
    {
        var dir = RealModels.TempDir("cluster-fold");
        foreach (var (opset, ir) in new[] { (13L, 8L), (21L, 10L) })
        {
            var graph = Model(opset, ir).ToGraph();
            PassManager.Run(graph, [new KMeansClusteringPass(new KMeansClusteringOptions { MinElements = 0 })]);
            var path = Path.Combine(dir, $"clustered{opset}.onnx");
            graph.Save(path);
            var optimized = WeightStorageChecks.OptimizedByOrt(path);
            Assert.Equal(["MatMul", "Relu", "MatMul"], optimized.Main.Nodes.Select(n => n.OpType).Where(op => op != "FusedMatMul"));
            foreach (var n in optimized.Main.Nodes.Where(n => n.OpType == "MatMul"))
                Assert.Equal((int)F, optimized.Main.Initializer(n.Input[1])!.DataType);
        }
    }

    [Fact]
    public void CnnSample_16Clusters_4BitIndices_KeepsAccuracyWithinHalfAPoint_AndComposesWithPruningAndSparseStorage()
    {
        var dir = RealModels.TempDir("cluster-cnn");
        var probes = SubsetFeed(RealModels.CnnSample);
        var output = Path.Combine(dir, "cnn.k16.onnx");
        var result = ModelCompressor.Compress(RealModels.CnnSample, [new KMeansClusteringPass(new KMeansClusteringOptions { Clusters = 16 })],
            new CompressionOptions { OutputPath = output, Probes = probes });
        Assert.All(result.Layers, l => Assert.StartsWith("4-bit", l.StorageAfter, StringComparison.Ordinal));
        double fp32 = SubsetAccuracy(File.ReadAllBytes(RealModels.CnnSample)), k16 = SubsetAccuracy(File.ReadAllBytes(output));
        Assert.True(Math.Abs(fp32 - k16) <= 0.005, $"accuracy {k16:P1} vs fp32 {fp32:P1}");
        Assert.True(result.CompressionRatio > 6, $"ratio {result.CompressionRatio}");

        // Pruned first: zeros keep index 0 through clustering (4-bit indices at 75% zeros are already smaller than any
        // sparse form, so sparse storage rightly leaves them dense).
        var both = Path.Combine(dir, "cnn.p75.k16.sparse.onnx");
        var combined = ModelCompressor.Compress(RealModels.CnnSample,
            [new MagnitudePruningPass(new PruningOptions { Sparsity = 0.75 }), new KMeansClusteringPass(new KMeansClusteringOptions { Clusters = 16 }), new SparseStoragePass()],
            new CompressionOptions { OutputPath = both, Probes = probes, Verification = new VerifyOptions { MinCosine = 0.8 } });
        Assert.True(combined.BytesAfter <= result.BytesAfter, $"{combined.BytesAfter} vs {result.BytesAfter}");
        var decoded = Decode(File.ReadAllBytes(both), "classifier.1.weight", 256 * 3136);
        Assert.InRange(decoded.Count(v => v == 0) / (double)decoded.Length, 0.749, 0.751);
    }
}
