using MLNetCompress.Clustering;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Pruning;
using MLNetCompress.Testing;
using Xunit.Abstractions;
using static MLNetCompress.Tests.Pruning.PruningChecks;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Pruning;

/// <summary>
/// The bitmask form of <see cref="SparseStoragePass"/>: stored bits and values decoded here by hand, the model run in
/// ONNX Runtime against the dense one, and ONNX Runtime's optimized graph read back to see the expansion folded.
/// </summary>
public class BitmaskStorageTests(ITestOutputHelper output)
{
    private const OnnxDataType F = OnnxDataType.Float;

    private static readonly string[] ExpansionOps = ["BitShift", "CumSum", "Gather", "Slice"];

    /// <summary>y = x · W with W [rows, cols] given.</summary>
    private static byte[] MatMul(int rows, int cols, float[] w, long opset = 13, long ir = 8) =>
        TestModels.Model(opset, ir).Input("x", F, 2, rows)
            .Initializer(TestTensors.Float("W", [rows, cols], w))
            .Node("MatMul", ["x", "W"], ["y"], name: "fc").Output("y", F, 2, cols).ToBytes();

    /// <summary>Random values with only every <paramref name="every"/>-th one kept (offset 3), −0.0 at index 3.</summary>
    private static float[] Sparse(int count, int every, int seed)
    {
        var w = TestTensors.RandomValues(count, seed);
        for (int i = 0; i < w.Length; i++) if (i % every != 3) w[i] = 0;
        if (count > 3) w[3] = -0f;
        return w;
    }

    private static ModelGraph Store(byte[] model, SparseFormat format, out PassResult result, double maxRatio = 0.9)
    {
        var graph = ModelGraph.FromBytes(model);
        result = PassManager.Run(graph, [new SparseStoragePass(new SparseStorageOptions { Format = format, MinElements = 0, MaxSizeRatio = maxRatio })])[0];
        return graph;
    }

    /// <summary>Hand decode: bit i of the mask (LSB first) says element i is non-zero; the k-th set bit takes payload element k (1-based).</summary>
    private static int[] HandDecodeBits(byte[] mask, int[] payloadBits, long count)
    {
        var dense = new int[count];
        int k = 1;
        for (long i = 0; i < count; i++)
            if (((mask[i / 8] >> (int)(i % 8)) & 1) == 1) dense[i] = payloadBits[k++];
        Assert.Equal(payloadBits.Length, k); // every stored value is used once
        return dense;
    }

    private static byte[] Raw(ModelGraph graph, string name) =>
        graph.Main.Initializer(name)?.RawData.ToByteArray() ?? throw new Xunit.Sdk.XunitException($"no initializer '{name}'");

    [Theory]
    [InlineData(64, 64, 10, 13)]   // 4096 values, a whole number of mask bytes
    [InlineData(13, 77, 7, 13)]    // 1001 values: the last mask byte is padded
    [InlineData(31, 33, 4, 13)]    // 1023 values, a quarter kept
    [InlineData(13, 77, 7, 11)]    // the lowest opset with BitShift and CumSum
    [InlineData(13, 77, 7, 21)]
    public void FloatWeight_StoredAsBitmask_DecodesByHandBitForBit_AndOrtFoldsItAtLoad(int rows, int cols, int every, long opset)
    {
        var w = Sparse(rows * cols, every, 5);
        var model = MatMul(rows, cols, w, opset, ir: opset >= 21 ? 10 : opset >= 13 ? 8 : 6);
        var graph = Store(model, SparseFormat.Bitmask, out var result, maxRatio: 1);

        Assert.True(result.Modified, string.Join("; ", result.Skipped));
        Assert.Null(graph.Main.Initializer("W"));
        Assert.Empty(graph.Main.Proto.SparseInitializer);
        // The stored mask and values, decoded independently of the library.
        var mask = Raw(graph, "W_bitmask");
        Assert.Equal((rows * cols + 7) / 8, mask.Length);
        var payload = Raw(graph, "W_nonzero");
        var payloadBits = Enumerable.Range(0, payload.Length / 4).Select(k => BitConverter.ToInt32(payload, 4 * k)).ToArray();
        Assert.Equal(0, payloadBits[0]);
        Assert.Equal(w.Count(v => BitConverter.SingleToInt32Bits(v) != 0) + 1, payloadBits.Length);
        Assert.Equal(w.Select(BitConverter.SingleToInt32Bits), HandDecodeBits(mask, payloadBits, w.Length));

        // ONNX Runtime: same outputs bit for bit, and the expansion folded into one float initializer at load.
        var stored = graph.ToBytes();
        AssertSameOrtOutputs(model, stored, "x", [2, rows]);
        var path = Path.Combine(RealModels.TempDir("bitmask-float"), $"w{rows}x{cols}-opset{opset}.onnx");
        File.WriteAllBytes(path, stored);
        var optimized = OptimizedByOrt(path);
        Assert.DoesNotContain(optimized.Main.Nodes, n => ExpansionOps.Contains(n.OpType));
        var fc = Assert.Single(optimized.Main.Nodes, n => n.OpType is "MatMul" or "Gemm" or "FusedMatMul");
        var folded = optimized.Main.Initializer(fc.Input[1]);
        Assert.NotNull(folded);
        Assert.Equal((int)F, folded.DataType);
        Assert.Equal(w.Select(BitConverter.SingleToInt32Bits), TensorData.ToFloatArray(folded).Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void VerySparseWeight_StoresItsMaskAsABitmaskToo_BeatsCoo_AndOrtFoldsBothLevels()
    {
        // 2% kept: 85% of the mask's bytes are zero, so the mask is stored as a second bitmask.
        var w = Sparse(400 * 500, 50, 13);
        var model = MatMul(400, 500, w);
        var coo = Store(model, SparseFormat.Coo, out _).ToBytes().Length;
        var graph = Store(model, SparseFormat.Auto, out var result);
        var stored = graph.ToBytes();
        output.WriteLine($"dense {model.Length}, coo {coo}, auto {stored.Length} bytes; {string.Join("; ", result.Changes)}");
        Assert.True(stored.Length < coo, $"{stored.Length} bytes is not below COO's {coo}");
        Assert.Null(graph.Main.Initializer("W_bitmask")); // computed from the second level

        // Hand decode, two levels: the outer mask's bytes from the inner mask and the non-zero mask bytes.
        var innerMask = Raw(graph, "W_bitmask_bitmask");
        var maskBytes = Raw(graph, "W_bitmask_nonzero").Select(b => (int)b).ToArray();
        var mask = HandDecodeBits(innerMask, maskBytes, (w.Length + 7) / 8).Select(b => (byte)b).ToArray();
        var payload = Raw(graph, "W_nonzero");
        var payloadBits = Enumerable.Range(0, payload.Length / 4).Select(k => BitConverter.ToInt32(payload, 4 * k)).ToArray();
        Assert.Equal(w.Select(BitConverter.SingleToInt32Bits), HandDecodeBits(mask, payloadBits, w.Length));

        AssertSameOrtOutputs(model, stored, "x", [2, 400]);
        var path = Path.Combine(RealModels.TempDir("bitmask-nested"), "w.onnx");
        File.WriteAllBytes(path, stored);
        var optimized = OptimizedByOrt(path);
        Assert.DoesNotContain(optimized.Main.Nodes, n => ExpansionOps.Contains(n.OpType));
        var fc = Assert.Single(optimized.Main.Nodes, n => n.OpType is "MatMul" or "Gemm" or "FusedMatMul");
        Assert.Equal(w.Select(BitConverter.SingleToInt32Bits), TensorData.ToFloatArray(optimized.Main.Initializer(fc.Input[1])!).Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void AllZeroWeight_IsAOneValuePayload_AndComesBackAsZeros()
    {
        var w = new float[40 * 30];
        var model = MatMul(40, 30, w);
        var graph = Store(model, SparseFormat.Bitmask, out var result);
        Assert.True(result.Modified);
        Assert.All(Raw(graph, "W_bitmask"), b => Assert.Equal(0, b));
        Assert.Equal(4, Raw(graph, "W_nonzero").Length); // just the zero element
        AssertSameOrtOutputs(model, graph.ToBytes(), "x", [2, 40]);
    }

    [Fact]
    public void WeightWithoutZeros_DoesNotPay_AndStaysDense_ButItsExpansionStillRestoresIt()
    {
        var w = TestTensors.RandomValues(17 * 9, 3);
        Assert.DoesNotContain(0f, w);
        var model = MatMul(17, 9, w);
        var graph = Store(model, SparseFormat.Bitmask, out var result, maxRatio: 1);
        Assert.False(result.Modified);
        Assert.NotNull(graph.Main.Initializer("W"));

        // Written anyway, the all-ones mask and every value restore the tensor.
        var encoded = BitmaskEncoding.Encode(TensorData.RawBytes(graph.Main.Initializer("W")!), F, [17, 9]);
        Assert.All(encoded.Mask.Take(encoded.Mask.Length - 1), b => Assert.Equal(0xFF, b));
        Assert.Equal(0x01, encoded.Mask[^1]); // 153 = 19·8 + 1 values
        var expansion = new BitmaskExpansion(graph);
        var planned = expansion.Plan(encoded, "W");
        var anchor = graph.Main.Consumers("W")[0];
        graph.Main.RemoveInitializer("W");
        expansion.Apply(planned, anchor);
        AssertSameOrtOutputs(model, graph.ToBytes(), "x", [2, 17]);
    }

    [Theory]
    [InlineData(300, 300, 500, SparseFormat.Coo)]     // 0.2% kept: 180 values with int32 indices beat even a two-level mask
    [InlineData(300, 300, 100, SparseFormat.Bitmask)] // 1% kept: the two-level mask (1,407 + ~900 bytes) beats 900 int32 indices
    [InlineData(300, 300, 10, SparseFormat.Bitmask)]  // 10% kept: the mask costs less than 9,000 int32 indices
    [InlineData(10, 12, 10, SparseFormat.Coo)]        // 120 values: the expansion's nodes outweigh int8 indices
    public void Auto_PicksTheSmallerFile(int rows, int cols, int every, SparseFormat expected)
    {
        var model = MatMul(rows, cols, Sparse(rows * cols, every, 9));
        var coo = Store(model, SparseFormat.Coo, out _).ToBytes().Length;
        var bitmask = Store(model, SparseFormat.Bitmask, out _, maxRatio: 1).ToBytes().Length;
        var auto = Store(model, SparseFormat.Auto, out var result);
        output.WriteLine($"{rows}x{cols}, 1 in {every}: dense {model.Length}, coo {coo}, bitmask {bitmask}, auto {auto.ToBytes().Length} bytes");
        Assert.Equal(Math.Min(coo, bitmask), auto.ToBytes().Length);
        Assert.Equal(expected == SparseFormat.Coo ? 1 : 0, auto.Main.Proto.SparseInitializer.Count);
        Assert.Contains(expected == SparseFormat.Coo ? "-> sparse:" : "-> bitmask:", Assert.Single(result.Changes), StringComparison.Ordinal);
    }

    /// <summary>A two-layer model whose first weight is 90% zeros, clustered to <paramref name="clusters"/> centroids.</summary>
    private static (byte[] Clustered, ModelGraph Graph) PrunedAndClustered(int clusters, long opset, long ir, int inFeatures = 96, int hidden = 75)
    {
        var w1 = Sparse(inFeatures * hidden, 10, 21);
        var model = TestModels.Model(opset, ir).Input("x", F, 2, inFeatures)
            .Initializer(TestTensors.Float("W1", [inFeatures, hidden], w1))
            .Initializer(TestTensors.Random("W2", [hidden, 4], 22))
            .Node("MatMul", ["x", "W1"], ["h"], name: "fc1")
            .Node("Relu", ["h"], ["r"], name: "relu")
            .Node("MatMul", ["r", "W2"], ["y"], name: "fc2")
            .Output("y", F, 2, 4).ToBytes();
        var graph = ModelGraph.FromBytes(model);
        PassManager.Run(graph, [new KMeansClusteringPass(new KMeansClusteringOptions { Clusters = clusters, MinElements = 1000 })]);
        return (graph.ToBytes(), graph);
    }

    [Theory]
    [InlineData(16, 13, 8, ClusterIndexStorage.PackedNibbles)]
    [InlineData(16, 21, 10, ClusterIndexStorage.UInt4)]
    [InlineData(12, 13, 8, ClusterIndexStorage.PackedNibbles)] // 7,200 indices, odd payload nibble count likely
    [InlineData(40, 13, 8, ClusterIndexStorage.UInt8)]
    public void ClusteredWeight_IndicesOfNonZerosOnly_SameOutputs_FoldedAtLoad(int clusters, long opset, long ir, ClusterIndexStorage storage)
    {
        Assert.Equal(storage, KMeansClusteringPass.StorageFor(clusters, opset, ir));
        var (clustered, graph) = PrunedAndClustered(clusters, opset, ir);
        var codebookName = graph.Main.Nodes.Single(n => n.OpType == "Gather").Input[0];
        var codebook = TensorData.ToFloatArray(graph.Main.Initializer(codebookName)!);
        Assert.Equal(0f, codebook[0]);

        var result = PassManager.Run(graph, [new SparseStoragePass(new SparseStorageOptions { Format = SparseFormat.Bitmask })])[0];
        Assert.True(result.Modified, string.Join("; ", result.Skipped));
        var stored = graph.ToBytes();
        output.WriteLine($"{clusters} clusters, opset {opset}: {clustered.Length} -> {stored.Length} bytes; {string.Join("; ", result.Changes)}");
        Assert.True(stored.Length < clustered.Length);
        // 7,200 indices: the 900-byte mask plus ~720 non-zeros (4 bits, or 8 above 16 clusters) and the nodes.
        long payloadBudget = 900 + (clusters <= 16 ? 720 / 2 : 720) + 120;
        long indexBytes = graph.Main.Initializers.Where(t => t.Name.StartsWith("W1", StringComparison.Ordinal) && t.Name != codebookName).Sum(t => t.RawData.Length);
        Assert.True(indexBytes <= payloadBudget, $"index storage {indexBytes} bytes > {payloadBudget}");

        // The weight the model computes, by hand: codebook[index] with index from the mask and the 4- or 8-bit payload.
        var weight = HandClusteredWeight(graph, codebookName, codebook, clusters <= 16);
        AssertSameOrtOutputs(clustered, stored, "x", [2, 96]);
        var path = Path.Combine(RealModels.TempDir("bitmask-cluster"), $"k{clusters}-opset{opset}.onnx");
        File.WriteAllBytes(path, stored);
        var optimized = OptimizedByOrt(path);
        Assert.DoesNotContain(optimized.Main.Nodes, n => ExpansionOps.Contains(n.OpType) || n.OpType == "Cast");
        var fc1 = optimized.Main.Nodes.First(n => n.OpType is "MatMul" or "FusedMatMul" or "Gemm");
        var folded = optimized.Main.Initializer(fc1.Input[1]);
        Assert.NotNull(folded);
        Assert.Equal(weight.Select(BitConverter.SingleToInt32Bits), TensorData.ToFloatArray(folded).Select(BitConverter.SingleToInt32Bits));
    }

    private static float[] HandClusteredWeight(ModelGraph graph, string codebookName, float[] codebook, bool nibbles)
    {
        var mask = graph.Main.Initializers.Single(t => t.Name.EndsWith("_bitmask", StringComparison.Ordinal)).RawData.ToByteArray();
        var payload = graph.Main.Initializers.Single(t => t.Name.Contains("_nonzero", StringComparison.Ordinal)).RawData.ToByteArray();
        var values = nibbles
            ? Enumerable.Range(0, payload.Length * 2).Select(k => (payload[k / 2] >> (k % 2 * 4)) & 0xF).ToArray()
            : payload.Select(b => (int)b).ToArray();
        Assert.Equal(0, values[0]);
        var indices = new int[96 * 75];
        int next = 1;
        for (int i = 0; i < indices.Length; i++)
            if (((mask[i / 8] >> (i % 8)) & 1) == 1) indices[i] = values[next++];
        Assert.True(next >= values.Length - 1, "every stored index is used (one padding nibble at most)");
        Assert.Null(graph.Main.Initializer("W1_nibbles")); // the clustering pass's 4-bit pairs are gone
        return indices.Select(k => codebook[k]).ToArray();
    }

    [Fact]
    public void Opset10_RefusesBitmaskWithAReason_AndAutoFallsBackToCoo()
    {
        var model = MatMul(100, 100, Sparse(100 * 100, 10, 4), opset: 10, ir: 6);
        var bitmask = Store(model, SparseFormat.Bitmask, out var refused);
        Assert.False(refused.Modified);
        Assert.Contains("opset 11", Assert.Single(refused.Skipped), StringComparison.Ordinal);
        var auto = Store(model, SparseFormat.Auto, out var result);
        Assert.True(result.Modified);
        Assert.Single(auto.Main.Proto.SparseInitializer);
        AssertSameOrtOutputs(model, auto.ToBytes(), "x", [2, 100]);
    }

    [Fact]
    public void UnknownFormat_IsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => new SparseStoragePass(new SparseStorageOptions { Format = (SparseFormat)7 }));
        Assert.Contains("Format", e.Message, StringComparison.Ordinal);
    }
}
