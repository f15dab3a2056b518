using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.Dynamic;
using MLNetCompress.Quantization.NBits;
using MLNetCompress.Testing;
using Xunit.Abstractions;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Quantization.NBits;

/// <summary>Gather tables stored int8 per row (dynamic pass) or 4-bit (GatherBlockQuantized), run in ONNX Runtime and
/// compared with the quantization formula computed here.</summary>
public class EmbeddingQuantizationTests(ITestOutputHelper output)
{
    private const int Vocab = 300, Width = 64;
    private static readonly long[] Ids = [0, 7, 299, 150, 7, 3, 42, 298, 1, 0];

    private static byte[] EmbeddingModel()
    {
        var table = Gaussian(Vocab * Width, 41, 0.05f);
        table[5 * Width + 3] = 0.9f; // one outlier row
        return TestModels.Model()
            .Input("ids", OnnxDataType.Int64, 2, 5)
            .Initializer(TestTensors.Float("table", [Vocab, Width], table))
            .Node("Gather", ["table", "ids"], ["y"], "embed")
            .Output("y", OnnxDataType.Float, 2, 5, Width)
            .ToBytes();
    }

    private static Dictionary<string, NamedTensor> Inputs() => new() { ["ids"] = new NamedTensor((long[])Ids.Clone(), [2, 5]) };

    [Fact]
    public void DynamicPass_Int8PerRow_OrtGivesExactlyTheFormula()
    {
        var bytes = EmbeddingModel();
        var table = TensorData.ToFloatArray(ModelGraph.FromBytes(bytes).Main.Initializer("table")!);
        var graph = ModelGraph.FromBytes(bytes);
        var layers = new List<LayerChange>();
        var result = new DynamicQuantizationPass(new DynamicQuantizationOptions { QuantizeEmbeddings = true, MinEmbeddingElements = 0 })
            .Run(graph, new PassContext(), layers);
        Assert.True(result.Modified);
        var layer = Assert.Single(layers);
        Assert.Equal("Gather", layer.OpType);
        Assert.Equal(Vocab * Width + 4 * Vocab, layer.BytesAfter);
        Assert.Null(graph.Main.Initializer("table"));
        Assert.Contains(graph.Main.Initializers, t => t.DataType == (int)OnnxDataType.Int8);

        var y = Run(graph.ToBytes(), Inputs())[0];
        for (int t = 0; t < Ids.Length; t++)
        {
            var row = table.AsSpan((int)Ids[t] * Width, Width);
            float scale = row.ToArray().Max(MathF.Abs) / 127f;
            for (int c = 0; c < Width; c++)
            {
                float expected = MathF.Round(row[c] / scale, MidpointRounding.ToEven) * scale;
                Assert.Equal(expected, y[t * Width + c]);
            }
        }
    }

    [Theory]
    [InlineData(true, 32)]
    [InlineData(false, 32)]
    [InlineData(false, 64)]
    public void MatMulNBitsPass_GatherBlockQuantized_OrtGivesTheStoredValues(bool symmetric, int blockSize)
    {
        var bytes = EmbeddingModel();
        var table = TensorData.ToFloatArray(ModelGraph.FromBytes(bytes).Main.Initializer("table")!);
        var graph = ModelGraph.FromBytes(bytes);
        var result = PassManager.Run(graph, [new MatMulNBitsPass(new() { QuantizeEmbeddings = true, MinEmbeddingElements = 0, Symmetric = symmetric, BlockSize = blockSize })])[0];
        Assert.True(result.Modified);
        var node = Assert.Single(graph.Main.Nodes);
        Assert.Equal("GatherBlockQuantized", node.OpType);
        Assert.Equal("com.microsoft", node.Domain);

        // Unpack the stored table by hand: two values a byte, low nibble first; int4 is signed, uint4 has zero points.
        var main = graph.Main;
        var data = main.Initializer(node.Input[0])!;
        Assert.Equal(symmetric ? (int)OnnxDataType.Int4 : (int)OnnxDataType.UInt4, data.DataType);
        var raw = data.RawData.ToByteArray();
        var scales = TensorData.ToFloatArray(main.Initializer(node.Input[2])!);
        byte[]? zp = symmetric ? null : main.Initializer(node.Input[3])!.RawData.ToByteArray();
        int blocks = Width / blockSize;
        Assert.Equal(Vocab * blocks, scales.Length);
        int Nibble(byte[] b, int i) => (b[i / 2] >> (i % 2 * 4)) & 0xF;
        float Stored(int r, int c)
        {
            int v = Nibble(raw, r * Width + c);
            if (symmetric) v = v >= 8 ? v - 16 : v;
            else v -= Nibble(zp!, r * blocks + c / blockSize);
            return v * scales[r * blocks + c / blockSize];
        }

        var y = Run(graph.ToBytes(), Inputs())[0];
        double worstOrt = 0, worstStep = 0;
        for (int t = 0; t < Ids.Length; t++)
            for (int c = 0; c < Width; c++)
            {
                int r = (int)Ids[t];
                float expected = Stored(r, c);
                worstOrt = Math.Max(worstOrt, Math.Abs(expected - y[t * Width + c]));
                float step = Math.Abs(scales[r * blocks + c / blockSize]);
                worstStep = Math.Max(worstStep, Math.Abs(expected - table[r * Width + c]) / step);
            }
        output.WriteLine($"symmetric {symmetric}, block {blockSize}: max |ORT − formula| {worstOrt:G3}, max error {worstStep:F3} steps");
        Assert.True(worstOrt <= 1e-6, $"ORT differs from the stored values by {worstOrt}");
        Assert.True(worstStep <= (symmetric ? 1.0001 : 0.5001), $"error {worstStep} steps");
    }

    [Fact]
    public void TablesReadOtherwise_OrSmall_StayFloat()
    {
        var graph = TestModels.Model()
            .Input("ids", OnnxDataType.Int64, 4)
            .Input("x", OnnxDataType.Float, 2, Width)
            .Initializer(TestTensors.Random("table", [Vocab, Width], 1))
            .Initializer(TestTensors.Random("tied", [Width, Vocab], 2))
            .Node("Gather", ["table", "ids"], ["e"], "embed")
            .Node("Gather", ["tied", "ids"], ["f"], "tied_gather")
            .Node("MatMul", ["x", "tied"], ["logits"], "head")
            .Output("e", OnnxDataType.Float, 4, Width)
            .Output("f", OnnxDataType.Float, 4, Vocab)
            .Output("logits", OnnxDataType.Float, 2, Vocab)
            .ToGraph();
        var result = PassManager.Run(graph, [new DynamicQuantizationPass(new DynamicQuantizationOptions
        {
            QuantizeEmbeddings = true, MinEmbeddingElements = Vocab * Width + 1, ExcludeNodes = new HashSet<string> { "head" },
        })])[0];
        Assert.False(result.Modified);
        Assert.Contains(result.Skipped, s => s.Contains("'table'", StringComparison.Ordinal) && s.Contains("minimum", StringComparison.Ordinal));
        Assert.Contains(result.Skipped, s => s.Contains("'tied'", StringComparison.Ordinal) && s.Contains("other than a Gather", StringComparison.Ordinal));
    }
}
