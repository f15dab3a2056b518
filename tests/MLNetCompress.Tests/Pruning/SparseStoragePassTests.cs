using MLNetCompress.Compression;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Pruning;
using MLNetCompress.Testing;
using static MLNetCompress.Tests.Pruning.PruningChecks;

namespace MLNetCompress.Tests.Pruning;

public class SparseStoragePassTests
{
    private const OnnxDataType F = OnnxDataType.Float;

    [Theory]
    [InlineData(10, 12, OnnxDataType.Int8)]      // 120 values: indices up to 119
    [InlineData(100, 300, OnnxDataType.Int16)]   // 30,000 values
    [InlineData(300, 300, OnnxDataType.Int32)]   // 90,000 values
    public void SparseWeight_UsesTheSmallestIndexType_AndOrtRestoresItBitForBit(int rows, int cols, OnnxDataType indexType)
    {
        var w = TestTensors.RandomValues(rows * cols, 5);
        for (int i = 0; i < w.Length; i++) if (i % 10 != 3) w[i] = 0;
        w[3] = -0f; // −0 is a value of its own and must come back as −0
        var model = TestModels.Model().Input("x", F, 2, rows)
            .Initializer(TestTensors.Float("W", [rows, cols], w))
            .Node("MatMul", ["x", "W"], ["y"]).Output("y", F, 2, cols).ToBytes();
        var graph = ModelGraph.FromBytes(model);
        var result = PassManager.Run(graph, [new SparseStoragePass(new SparseStorageOptions { MinElements = 0 })])[0];

        Assert.True(result.Modified);
        var proto = ModelProto.Parser.ParseFrom(graph.ToBytes());
        Assert.Empty(proto.Graph.Initializer); // a sparse initializer is not also a dense one
        var sparse = Assert.Single(proto.Graph.SparseInitializer);
        Assert.Equal("W", sparse.Values.Name);
        Assert.Equal([rows, cols], sparse.Dims);
        Assert.Equal((int)indexType, sparse.Indices.DataType);
        // Independent densify: linear indices into the flattened tensor.
        var idx = TensorData.ToFloatArray(sparse.Indices);
        var vals = TensorData.ToFloatArray(sparse.Values);
        var dense = new float[w.Length];
        for (int k = 0; k < idx.Length; k++) dense[(int)idx[k]] = vals[k];
        Assert.Equal(w.Select(BitConverter.SingleToInt32Bits), dense.Select(BitConverter.SingleToInt32Bits));
        AssertSameOrtOutputs(model, graph.ToBytes(), "x", [2, rows]);
    }

    [Fact]
    public void DenseWeight_StaysAnInitializer()
    {
        var graph = TestModels.Mlp(64, 128, 32).ToGraph();
        var result = PassManager.Run(graph, [new SparseStoragePass()])[0];
        Assert.False(result.Modified);
        Assert.Empty(graph.Main.Proto.SparseInitializer);
    }

    [Fact]
    public void OldIrVersion_IsLeftAloneWithAReason()
    {
        var graph = TestModels.Mlp(64, 128, 32).IrVersion(5).ToGraph();
        var result = new SparseStoragePass().Run(graph, new PassContext());
        Assert.False(result.Modified);
        Assert.Contains("IR version 5", Assert.Single(result.Skipped), StringComparison.Ordinal);
    }

    [Fact]
    public void CnnSample_Pruned90_WithSparseStorage_IsThreeTimesSmaller_WithTheDensePrunedOutputs()
    {
        var dir = RealModels.TempDir("sparse-cnn");
        var dense = Path.Combine(dir, "pruned.onnx");
        var sparse = Path.Combine(dir, "pruned.sparse.onnx");
        var prune = new PruningOptions { Sparsity = 0.9 };
        // 90% of every layer without reconstruction moves the logits a lot; this test is about storage.
        var verify = new VerifyOptions { MinCosine = 0.5 };
        var probes = SubsetFeed(RealModels.CnnSample);
        ModelCompressor.Compress(RealModels.CnnSample, [new MagnitudePruningPass(prune)],
            new CompressionOptions { OutputPath = dense, Probes = probes, Verification = verify });
        var result = ModelCompressor.Compress(RealModels.CnnSample, [new MagnitudePruningPass(prune), new SparseStoragePass()],
            new CompressionOptions { OutputPath = sparse, Probes = probes, Verification = verify });

        long original = new FileInfo(RealModels.CnnSample).Length, after = new FileInfo(sparse).Length;
        Assert.True(original >= 3 * after, $"{after} bytes is not 3x smaller than {original}");
        Assert.Equal(after, result.BytesAfter);
        Assert.Contains(result.Layers, l => l.Weight == "classifier.1.weight" && l.StorageAfter.StartsWith("sparse", StringComparison.Ordinal));
        AssertSameOrtOutputs(File.ReadAllBytes(dense), File.ReadAllBytes(sparse), "input", [4, 1, 28, 28]);
    }
}
