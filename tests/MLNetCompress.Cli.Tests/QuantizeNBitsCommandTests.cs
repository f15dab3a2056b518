using MLNetCompress.Cli.Commands;
using MLNetCompress.Onnx;
using MLNetCompress.Testing;
using Xunit.Abstractions;

namespace MLNetCompress.Cli.Tests;

/// <summary><c>quantize --mode matmulnbits</c> and the MatMulNBits options: MiniLM end to end, bad combinations.</summary>
public class QuantizeNBitsCommandTests(ITestOutputHelper log)
{
    private static Task<CliResult> Run(params string[] args) => CliRunner.Run(args);

    private static string Sentences => $"text:{Path.Combine(RealModels.SamplesDir, "text", "sentences.txt")}?max-len=32";

    [Fact]
    public async Task MatMulNBits_MiniLm_FourBitWeightsAndEmbeddings_ReportsTheLatencyRatio_AndRefusesToRequantize()
    {
        var dir = RealModels.TempDir("quantize-nbits");
        var output = Path.Combine(dir, "minilm.nbits.onnx");
        var run = await Run("quantize", RealModels.MiniLm, "-o", output, "--mode", "matmulnbits", "--block-size", "64", "--symmetric",
            "-c", Sentences, "--vocab", RealModels.MiniLmVocab, "--eval-rows", "8", "--min-cosine", "0.9");
        log.WriteLine(run.Out + run.Err);
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.Contains("latency ratio", run.Out);
        Assert.Contains("x of the original", run.Out);
        Assert.Contains("MatMulNBits: 4-bit weights in blocks of 64, symmetric", run.Out);
        var graph = ModelGraph.Load(output);
        var ops = graph.Main.Nodes.Select(n => n.OpType).ToList();
        Assert.Equal(36, ops.Count(o => o == "MatMulNBits"));
        Assert.Contains("GatherBlockQuantized", ops);
        Assert.All(graph.Main.Nodes.Where(n => n.OpType == "MatMulNBits"),
            n => Assert.Equal(64, n.Attribute.Single(a => a.Name == "block_size").I));
        Assert.True(new FileInfo(output).Length * 5 < new FileInfo(RealModels.MiniLm).Length, $"{new FileInfo(output).Length} bytes");

        var again = Path.Combine(dir, "minilm.nbits.again.onnx");
        var second = await Run("quantize", output, "-o", again, "--mode", "matmulnbits", "-c", Sentences, "--vocab", RealModels.MiniLmVocab);
        second.AssertCleanFailure(ErrorReporter.Failure);
        Assert.Contains("already quantized", second.Err);
        Assert.Contains("MatMulNBits", second.Err);
        Assert.False(File.Exists(again));
    }

    [Theory]
    [InlineData("--block-size 48 --mode matmulnbits", "--block-size")]
    [InlineData("--accuracy-level 7 --mode matmulnbits", "--accuracy-level")]
    [InlineData("--mode dynamic --gptq", "--gptq")]
    [InlineData("--block-size 64", "--mode matmulnbits")]
    [InlineData("--mode int3", "unknown --mode")]
    [InlineData("--mode matmulnbits --dynamic", "--dynamic contradicts")]
    [InlineData("--mode matmulnbits --per-channel", "static quantization")]
    [InlineData("--float-embeddings", "--float-embeddings")]
    public async Task BadCombinations_AreCleanErrors_AndWriteNothing(string options, string expected)
    {
        var output = Path.Combine(RealModels.TempDir("quantize-nbits-bad"), "out.onnx");
        var run = await Run(["quantize", RealModels.MlpSample, "-o", output, "-c", $"fashion-mnist:{RealModels.FashionMnistSubset}:test",
            .. options.Split(' ')]);
        run.AssertCleanFailure(ErrorReporter.Failure);
        Assert.Contains(expected, run.Err);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task Help_DocumentsTheModesAndTheirOptions()
    {
        var run = await Run("quantize", "--help");
        Assert.Equal(0, run.ExitCode);
        foreach (var option in new[] { "--mode", "matmulnbits", "--block-size", "--symmetric", "--accuracy-level", "--gptq", "--float-embeddings" })
            Assert.Contains(option, run.Out);
    }
}
