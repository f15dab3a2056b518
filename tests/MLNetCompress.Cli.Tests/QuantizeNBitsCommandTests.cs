using MLNetCompress.Cli.Commands;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Testing;
using Xunit.Abstractions;

namespace MLNetCompress.Cli.Tests;

/// <summary><c>quantize --mode matmulnbits</c> and the MatMulNBits options on a small two-layer model (MiniLM end to end
/// runs in the library's tests; the dynamic path, with its int8 word embeddings, in QuantizeCommandTests), and bad
/// combinations.</summary>
public class QuantizeNBitsCommandTests(ITestOutputHelper log)
{
    private static Task<CliResult> Run(params string[] args) => CliRunner.Run(args);

    /// <summary>x[N,128] → MatMul W1[128,256] → Relu → MatMul W2[256,64] → y, saved for the command.</summary>
    private static string TwoMatMuls(string dir) =>
        TestModels.Model()
            .Input("x", OnnxDataType.Float, "N", 128)
            .Initializer(TestTensors.Random("W1", [128, 256], 1))
            .Initializer(TestTensors.Random("W2", [256, 64], 2))
            .Node("MatMul", ["x", "W1"], ["h"], "mm1")
            .Node("Relu", ["h"], ["r"])
            .Node("MatMul", ["r", "W2"], ["y"], "mm2")
            .Output("y", OnnxDataType.Float, "N", 64)
            .Save(Path.Combine(dir, "two-matmuls.onnx"));

    [Fact]
    public async Task MatMulNBits_Gptq_WritesMatMulNBits_ReportsTheLatencyRatio_AndRefusesToRequantize()
    {
        var dir = RealModels.TempDir("quantize-nbits");
        var model = TwoMatMuls(dir);
        var output = Path.Combine(dir, "two-matmuls.nbits.onnx");
        var run = await Run("quantize", model, "-o", output, "--mode", "matmulnbits", "--block-size", "64", "--gptq",
            "-c", "random?rows=64", "--calibration-rows", "64", "--eval-rows", "16", "--min-cosine", "0.95");
        log.WriteLine(run.Out + run.Err);
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.Contains("latency ratio", run.Out);
        Assert.Contains("x of the original", run.Out);
        Assert.Contains("MatMulNBits: 4-bit weights in blocks of 64, zero points, accuracy level 4, GPTQ", run.Out);
        var graph = ModelGraph.Load(output);
        var nodes = graph.Main.Nodes.Where(n => n.OpType == "MatMulNBits").ToList();
        Assert.Equal(2, nodes.Count);
        Assert.All(nodes, n => Assert.Equal(64, n.Attribute.Single(a => a.Name == "block_size").I));
        Assert.All(nodes, n => Assert.Equal(4, n.Input.Count)); // zero points stored

        var again = Path.Combine(dir, "two-matmuls.nbits.again.onnx");
        var second = await Run("quantize", output, "-o", again, "--mode", "matmulnbits", "-c", "random?rows=8");
        second.AssertCleanFailure(ErrorReporter.Failure);
        Assert.Contains("already quantized", second.Err);
        Assert.Contains("MatMulNBits", second.Err);
        Assert.False(File.Exists(again));
    }

    [Fact]
    public async Task MatMulNBits_Symmetric_AccuracyLevel0()
    {
        var dir = RealModels.TempDir("quantize-nbits-sym");
        var output = Path.Combine(dir, "out.onnx");
        var run = await Run("quantize", TwoMatMuls(dir), "-o", output, "--mode", "matmulnbits", "--symmetric", "--accuracy-level", "0",
            "-c", "random?rows=16", "--eval-rows", "16", "--min-cosine", "0.95", "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        var nodes = ModelGraph.Load(output).Main.Nodes.Where(n => n.OpType == "MatMulNBits").ToList();
        Assert.Equal(2, nodes.Count);
        Assert.All(nodes, n => Assert.Equal(3, n.Input.Count)); // symmetric: no zero points
        Assert.All(nodes, n => Assert.Equal(0, n.Attribute.Single(a => a.Name == "accuracy_level").I));
        Assert.All(nodes, n => Assert.Equal(32, n.Attribute.Single(a => a.Name == "block_size").I));
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
