using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.NBits;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Xunit.Abstractions;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Quantization.NBits;

/// <summary>MiniLM end to end: 4-bit MatMulNBits weights and a 4-bit word-embedding table, pooled sentence
/// embeddings compared with the float model's on real sentences.</summary>
public class MatMulNBitsMiniLmTests(ITestOutputHelper output)
{
    [Fact]
    public void MiniLm_FourBit_WithEmbeddings_IsFiveTimesSmaller_AndClose()
    {
        var graph = ModelGraph.Load(RealModels.MiniLm);
        var layers = new List<LayerChange>();
        var result = new MatMulNBitsPass(new MatMulNBitsOptions { QuantizeEmbeddings = true }).Run(graph, new PassContext(), layers);
        Assert.True(result.Modified);
        var ops = graph.Main.Nodes.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(36, ops["MatMulNBits"]);
        Assert.True(ops.GetValueOrDefault("GatherBlockQuantized") >= 1, "the word embeddings were not quantized");
        Assert.Contains(layers, l => l.OpType == "Gather" && l.Shape[0] == 30522);
        var path = Path.Combine(RealModels.TempDir("matmulnbits"), "minilm.nbits.onnx");
        graph.Save(path);

        using var a = ModelRunner.Load(RealModels.MiniLm);
        using var b = ModelRunner.Load(path);
        using var vocab = File.OpenRead(RealModels.MiniLmVocab);
        var feed = new TextFeed(Path.Combine(RealModels.SamplesDir, "text", "sentences.txt"), vocab, a.Inputs, maxLength: 48);
        double minCosine = 1, sum = 0;
        int rows = 0;
        foreach (var batch in feed.Batches(6, 12))
        {
            var ya = a.Run(batch)["924"];
            var yb = b.Run(batch)["924"];
            for (int r = 0; r < ya.Rows; r++, rows++)
            {
                double c = Cosine(ya.Row(r), yb.Row(r));
                minCosine = Math.Min(minCosine, c);
                sum += c;
            }
        }
        long before = OnnxModelIO.SizeOnDisk(RealModels.MiniLm), after = OnnxModelIO.SizeOnDisk(path);
        output.WriteLine($"MiniLM 4-bit: {rows} sentences, mean cosine {sum / rows:F5}, min {minCosine:F5}; {before} -> {after} bytes ({(double)before / after:F2}x)");
        Assert.Equal(12, rows);
        Assert.True(minCosine >= 0.95, $"min cosine {minCosine}");
        Assert.True(sum / rows >= 0.98, $"mean cosine {sum / rows}");
        Assert.True(before >= 5.0 * after, $"{before} -> {after}");
    }
}
