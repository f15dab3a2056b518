using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.NBits;
using MLNetCompress.Testing;
using Xunit.Abstractions;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Quantization.NBits;

/// <summary>
/// MatMulNBits as ONNX Runtime runs it, against a reference written here from the op's documentation: unpack
/// B[N, kBlocks, blob] and the zero points bit by bit, dequantize <c>(q − zp)·scale</c>, multiply in double.
/// </summary>
public class MatMulNBitsPassTests(ITestOutputHelper output)
{
    private const OnnxDataType F = OnnxDataType.Float;
    private const int Rows = 5;

    private static ModelBuilder OneMatMul(int k, int n, int seed = 3) =>
        TestModels.Model()
            .Input("x", F, Rows, k)
            .Initializer(TestTensors.Random("W", [k, n], seed))
            .Node("MatMul", ["x", "W"], ["y"], "mm")
            .Output("y", F, Rows, n);

    /// <summary>The weight MatMulNBits computes with, rebuilt from the node's initializers with plain bit arithmetic.</summary>
    internal static float[] ReferenceWeight(ModelGraph graph, NodeProto node)
    {
        var main = graph.Main;
        long Attr(string name) => node.Attribute.Single(a => a.Name == name).I;
        int k = (int)Attr("K"), n = (int)Attr("N"), bits = (int)Attr("bits"), block = (int)Attr("block_size");
        int blocks = (k + block - 1) / block, blob = block * bits / 8;
        var b = main.Initializer(node.Input[1])!;
        Assert.Equal((int)OnnxDataType.UInt8, b.DataType);
        Assert.Equal(new long[] { n, blocks, blob }, b.Dims.ToArray());
        var raw = b.RawData.ToByteArray();
        var scales = TensorData.ToFloatArray(main.Initializer(node.Input[2])!);
        Assert.Equal(n * blocks, scales.Length);
        byte[]? zp = node.Input.Count > 3 ? main.Initializer(node.Input[3])!.RawData.ToByteArray() : null;
        int zpBytes = (blocks * bits + 7) / 8;
        if (zp is not null) Assert.Equal(n * zpBytes, zp.Length);
        int mask = (1 << bits) - 1, perByte = 8 / bits;
        var w = new float[k * n];
        for (int c = 0; c < n; c++)
            for (int r = 0; r < k; r++)
            {
                int blk = r / block, i = r % block;
                int q = (raw[c * blocks * blob + blk * blob + i / perByte] >> (i % perByte * bits)) & mask;
                int z = zp is null ? 1 << (bits - 1) : (zp[c * zpBytes + blk / perByte] >> (blk % perByte * bits)) & mask;
                w[r * n + c] = (q - z) * scales[c * blocks + blk];
            }
        return w;
    }

    internal static float[] MatMul(float[] x, float[] w, int rows, int k, int n)
    {
        var y = new float[rows * n];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < n; c++)
            {
                double s = 0;
                for (int j = 0; j < k; j++) s += (double)x[r * k + j] * w[j * n + c];
                y[r * n + c] = (float)s;
            }
        return y;
    }

    [Theory]
    [InlineData(4, 32, false, 256)]
    [InlineData(4, 32, true, 256)]
    [InlineData(4, 64, false, 256)]
    [InlineData(4, 64, true, 192)]
    [InlineData(4, 128, false, 256)]
    [InlineData(4, 128, true, 256)]
    [InlineData(4, 32, false, 100)] // K not a multiple of the block size
    [InlineData(4, 128, true, 200)]
    [InlineData(2, 32, false, 96)]
    [InlineData(8, 64, true, 160)]
    public void OrtMatMulNBits_MatchesDequantizeThenMatMul(int bits, int blockSize, bool symmetric, int k)
    {
        const int n = 24;
        var graph = OneMatMul(k, n).ToGraph();
        var original = TensorData.ToFloatArray(graph.Main.Initializer("W")!);
        var result = PassManager.Run(graph, [new MatMulNBitsPass(new() { Bits = bits, BlockSize = blockSize, Symmetric = symmetric, AccuracyLevel = 0 })])[0];
        Assert.True(result.Modified);
        var node = Assert.Single(graph.Main.Nodes);
        Assert.Equal("MatMulNBits", node.OpType);
        Assert.Equal("com.microsoft", node.Domain);
        Assert.Equal(symmetric ? 3 : 4, node.Input.Count);
        Assert.Null(graph.Main.Initializer("W"));

        var w = ReferenceWeight(graph, node);
        // Round to nearest: each value within one step of the original (half a step but for the clipped side of a
        // symmetric block), where a step is the block's |scale|.
        var scales = TensorData.ToFloatArray(graph.Main.Initializer(node.Input[2])!);
        int blocks = (k + blockSize - 1) / blockSize;
        for (int r = 0; r < k; r++)
            for (int c = 0; c < n; c++)
            {
                float step = Math.Abs(scales[c * blocks + r / blockSize]);
                float bound = symmetric ? step : step / 2;
                Assert.True(Math.Abs(w[r * n + c] - original[r * n + c]) <= bound * 1.0001f, $"w[{r},{c}] {w[r * n + c]} vs {original[r * n + c]}, step {step}");
            }

        var x = Gaussian(Rows * k, 11);
        var inputs = new Dictionary<string, NamedTensor> { ["x"] = new NamedTensor(x, [Rows, k]) };
        var ort = Run(graph.ToBytes(), inputs)[0];
        var reference = MatMul(x, w, Rows, k, n);
        float peak = reference.Max(MathF.Abs);
        double worst = 0;
        for (int i = 0; i < ort.Length; i++) worst = Math.Max(worst, Math.Abs(ort[i] - reference[i]));
        output.WriteLine($"bits {bits}, block {blockSize}, symmetric {symmetric}, K {k}: max |ORT − reference| {worst:G3} (peak {peak:G3})");
        Assert.True(worst <= 1e-4 * peak, $"ORT differs from the reference by {worst} (peak {peak})");
    }

    [Fact]
    public void AccuracyLevel4_IsWrittenAndStaysClose()
    {
        const int k = 256, n = 64;
        var bytes = OneMatMul(k, n).ToBytes();
        var graph = ModelGraph.FromBytes(bytes);
        PassManager.Run(graph, [new MatMulNBitsPass()]);
        var node = Assert.Single(graph.Main.Nodes);
        Assert.Equal(4, node.Attribute.Single(a => a.Name == "accuracy_level").I);
        var x = Gaussian(Rows * k, 12);
        var inputs = new Dictionary<string, NamedTensor> { ["x"] = new NamedTensor(x, [Rows, k]) };
        var reference = MatMul(x, ReferenceWeight(graph, node), Rows, k, n);
        var ort = Run(graph.ToBytes(), inputs)[0];
        double cosine = Cosine(ort, reference), vsFloat = Cosine(ort, Run(bytes, inputs)[0]);
        output.WriteLine($"accuracy level 4: cosine vs reference {cosine:F6}, vs fp32 {vsFloat:F6}");
        Assert.True(cosine > 0.999, $"cosine {cosine}");
        Assert.True(vsFloat > 0.99, $"cosine vs fp32 {vsFloat}");
    }

    [Fact]
    public void AlreadyMatMulNBits_IsDetected_AndLeftAlone()
    {
        var graph = OneMatMul(128, 16).ToGraph();
        PassManager.Run(graph, [new MatMulNBitsPass()]);
        var before = graph.ToBytes();
        var again = PassManager.Run(graph, [new MatMulNBitsPass(new() { QuantizeEmbeddings = true })])[0];
        Assert.False(again.Modified);
        Assert.Contains(again.Skipped, s => s.Contains("already quantized", StringComparison.Ordinal) && s.Contains("MatMulNBits", StringComparison.Ordinal));
        Assert.Equal(before, graph.ToBytes());
        Assert.Contains("MatMulNBits", MatMulNBitsPass.AlreadyQuantized(graph));
    }

    [Fact]
    public void SmallExcludedAndComputedWeights_AreLeftWithReasons()
    {
        var graph = TestModels.Model()
            .Input("x", F, Rows, 64)
            .Initializer(TestTensors.Random("W1", [64, 64], 1))
            .Initializer(TestTensors.Random("W2", [64, 8], 2))
            .Node("MatMul", ["x", "W1"], ["h"], "mm1")
            .Node("MatMul", ["h", "W2"], ["y"], "mm2")
            .Node("Transpose", ["h"], ["ht"], "t")
            .Node("MatMul", ["h", "ht"], ["z"], "scores")
            .Output("y", F, Rows, 8)
            .Output("z", F, Rows, Rows)
            .ToGraph();
        var result = PassManager.Run(graph, [new MatMulNBitsPass(new() { ExcludeNodes = new HashSet<string> { "mm1" } })])[0];
        Assert.False(result.Modified);
        Assert.Contains(result.Skipped, s => s.Contains("'mm1'", StringComparison.Ordinal) && s.Contains("excluded", StringComparison.Ordinal));
        Assert.Contains(result.Skipped, s => s.Contains("'mm2'", StringComparison.Ordinal) && s.Contains("MinElements", StringComparison.Ordinal));
        Assert.DoesNotContain(result.Skipped, s => s.Contains("scores", StringComparison.Ordinal));
    }

    [Fact]
    public void BadOptions_AreRefusedNamingTheOption()
    {
        Assert.Contains("BlockSize", Assert.Throws<ArgumentException>(() => new MatMulNBitsPass(new() { BlockSize = 48 })).Message);
        Assert.Contains("Bits", Assert.Throws<ArgumentException>(() => new MatMulNBitsPass(new() { Bits = 3 })).Message);
        Assert.Contains("AccuracyLevel", Assert.Throws<ArgumentException>(() => new MatMulNBitsPass(new() { AccuracyLevel = 5 })).Message);
        Assert.Contains("calibration", Assert.Throws<ArgumentException>(() => new MatMulNBitsPass(new() { Algorithm = NBitsAlgorithm.Gptq })).Message);
    }

    [Fact]
    public void LayerChanges_ReportTheStoredBytes()
    {
        var graph = OneMatMul(256, 32).ToGraph();
        var layers = new List<LayerChange>();
        new MatMulNBitsPass(new() { BlockSize = 64 }).Run(graph, new PassContext(), layers);
        var layer = Assert.Single(layers);
        // 32 columns × 4 blocks × 32 bytes + 128 float scales + 32 columns × 2 bytes of zero points.
        Assert.Equal(32 * 4 * 32 + 4 * 128 + 32 * 2, layer.BytesAfter);
        Assert.Equal(4 * 256 * 32, layer.BytesBefore);
        long stored = graph.Main.Initializers.Sum(t => (long)t.RawData.Length);
        Assert.Equal(layer.BytesAfter, stored);
    }
}
