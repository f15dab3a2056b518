using MLNetCompress.Cli.Commands;
using MLNetCompress.Onnx;
using MLNetCompress.Testing;
using Xunit.Abstractions;

namespace MLNetCompress.Cli.Tests;

public class QuantizeCommandTests(ITestOutputHelper log)
{
    private static Task<CliResult> Run(params string[] args) => CliRunner.Run(args);

    [Fact]
    public async Task Quantize_CnnSample_WritesAFusedModel_AndReportsTheLatencyRatio()
    {
        var dir = RealModels.TempDir("quantize-cli");
        var output = Path.Combine(dir, "cnn.qdq.onnx");
        var run = await Run("quantize", RealModels.CnnSample, "-o", output, "-q", "--per-channel", "--method", "entropy",
            "--calibration", $"fashion-mnist:{RealModels.FashionMnistSubset}:train", "--calibration-rows", "128",
            "--eval", $"fashion-mnist:{RealModels.FashionMnistSubset}:test", "--eval-rows", "256");
        log.WriteLine(run.Out);
        Assert.True(run.ExitCode == 0, run.Err + run.Out);
        Assert.Contains("latency ratio", run.Out);
        Assert.Contains("x of the original", run.Out);
        Assert.Contains("accuracy", run.Out);
        var graph = ModelGraph.Load(output);
        Assert.Contains(graph.Main.Nodes, n => n.OpType == "QuantizeLinear");
        Assert.Equal(13, graph.OnnxOpset);

        // Quantizing the result again is refused with a clear message, and nothing is written.
        var again = Path.Combine(dir, "cnn.qdq.again.onnx");
        var second = await Run("quantize", output, "-o", again, "--calibration", $"fashion-mnist:{RealModels.FashionMnistSubset}:train");
        second.AssertCleanFailure(ErrorReporter.Failure);
        Assert.Contains("already quantized", second.Err);
        Assert.False(File.Exists(again));
    }

    [Theory]
    [InlineData("int8", 3)]   // TensorProto.INT8: S8S8
    [InlineData("uint8", 2)]  // TensorProto.UINT8: U8S8
    public async Task Quantize_ActivationTypeNames_SetTheActivationZeroPointType(string name, int expectedType)
    {
        var output = Path.Combine(RealModels.TempDir("quantize-cli-act"), $"mlp.{name}.onnx");
        // Every layer int8 whatever this CPU's timings say: the first layer's input QuantizeLinear is what is checked.
        var run = await Run("quantize", RealModels.MlpSample, "-o", output, "-q", "--activations", name, "--no-speed-check",
            "--calibration", $"fashion-mnist:{RealModels.FashionMnistSubset}:train", "--calibration-rows", "64", "--eval-rows", "64");
        Assert.True(run.ExitCode == 0, run.Err + run.Out);
        var graph = ModelGraph.Load(output);
        // The activation QuantizeLinear reads the graph input; its zero point's element type is the activation type.
        var q = graph.Main.Nodes.First(n => n.OpType == "QuantizeLinear" && n.Input[0] == "input");
        var zeroPoint = graph.Main.Initializers.Single(t => t.Name == q.Input[2]);
        Assert.Equal(expectedType, zeroPoint.DataType);
    }

    [Fact]
    public async Task Quantize_BadMethod_IsACleanError_AndWritesNothing()
    {
        var output = Path.Combine(RealModels.TempDir("quantize-cli-bad"), "out.onnx");
        var run = await Run("quantize", RealModels.CnnSample, "-o", output, "--method", "median",
            "--calibration", $"fashion-mnist:{RealModels.FashionMnistSubset}:train");
        run.AssertCleanFailure(ErrorReporter.Failure);
        Assert.Contains("--method", run.Err);
        Assert.Contains("minmax, percentile, entropy or mse", run.Err);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task Quantize_Dynamic_RewritesMiniLmMatMuls_AndReportsTheLatencyRatio()
    {
        var dir = RealModels.TempDir("quantize-dynamic");
        var output = Path.Combine(dir, "minilm.dyn.onnx");
        var sentences = Path.Combine(RealModels.SamplesDir, "text", "sentences.txt");
        var run = await Run("quantize", RealModels.MiniLm, "-o", output, "--dynamic", "-c", $"text:{sentences}?max-len=32",
            "--vocab", RealModels.MiniLmVocab, "--eval-rows", "16", "--min-cosine", "0.8", "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.Contains("latency ratio", run.Out);
        Assert.Contains("dynamic", run.Out);
        var ops = ModelGraph.Load(output).Main.Nodes.Select(n => n.OpType).ToList();
        Assert.Equal(36, ops.Count(o => o == "MatMulInteger"));
        Assert.Equal(12, ops.Count(o => o == "MatMul")); // the attention MatMuls multiply two activations and stay float
    }
}
