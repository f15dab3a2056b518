using MLNetCompress.Onnx;
using MLNetCompress.Testing;
using Xunit.Abstractions;

namespace MLNetCompress.Cli.Tests;

/// <summary><c>quantize --max-drop/--metric/--time-budget/--budget-search</c> and <c>--exclude-ops</c>.</summary>
public class QuantizeBudgetCommandTests(ITestOutputHelper log)
{
    private static Task<CliResult> Run(params string[] args) => CliRunner.Run(args);

    private static string Train => $"fashion-mnist:{RealModels.FashionMnistSubset}:train";

    private static string Test => $"fashion-mnist:{RealModels.FashionMnistSubset}:test";

    [Fact]
    public async Task MaxDrop_OnTheCnn_WritesAModelWithinTheBudget_AndTheTableOfTries()
    {
        var output = Path.Combine(RealModels.TempDir("quantize-budget"), "cnn.budget.onnx");
        var run = await Run("quantize", RealModels.CnnSample, "-o", output, "-q", "--per-channel", "--calibration", Train,
            "--calibration-rows", "256", "--eval", Test, "--max-drop", "0.1", "--metric", "accuracy", "--budget-search", "greedy");
        log.WriteLine(run.Out);
        Assert.True(run.ExitCode == 0, run.Err + run.Out);
        Assert.Contains("Accuracy budget: what was tried", run.Out);
        Assert.Contains("all layers quantized", run.Out);
        Assert.Contains("budget result", run.Out);
        Assert.Contains("met:", run.Out);
        Assert.DoesNotContain("NOT met", run.Out);
        Assert.Contains("<- written", run.Out);
        Assert.Contains(ModelGraph.Load(output).Main.Nodes, n => n.OpType == "QuantizeLinear");
    }

    [Fact]
    public async Task TimeBudget_StopsEarly_AndSaysSo()
    {
        var output = Path.Combine(RealModels.TempDir("quantize-budget-time"), "cnn.budget.onnx");
        var run = await Run("quantize", RealModels.CnnSample, "-o", output, "-q", "--calibration", Train, "--calibration-rows", "64",
            "--eval", Test, "--eval-rows", "64", "--max-drop", "0", "--metric", "agreement", "--time-budget", "0.001", "--min-cosine", "0.9");
        log.WriteLine(run.Out);
        Assert.True(run.ExitCode == 0, run.Err + run.Out);
        Assert.Contains("stopped early by --time-budget", run.Out);
        Assert.Contains("time budget", run.Out);
        Assert.True(File.Exists(output));
    }

    [Fact]
    public async Task ExcludeOps_LeavesThatOpTypeFloat()
    {
        var output = Path.Combine(RealModels.TempDir("quantize-exclude-ops"), "cnn.noconv.onnx");
        var run = await Run("quantize", RealModels.CnnSample, "-o", output, "-q", "--per-channel", "--calibration", Train,
            "--calibration-rows", "64", "--eval-rows", "64", "--exclude-ops", "gemm");
        Assert.True(run.ExitCode == 0, run.Err + run.Out);
        var graph = ModelGraph.Load(output);
        var gemms = graph.Main.Nodes.Where(n => n.OpType == "Gemm").ToList();
        Assert.Equal(2, gemms.Count);
        // Each Gemm still reads its float weight initializer; the Convs read dequantized int8 weights.
        Assert.All(gemms, g => Assert.Null(graph.Main.Producer(g.Input[1])));
        Assert.All(graph.Main.Nodes.Where(n => n.OpType == "Conv"), c => Assert.Equal("DequantizeLinear", graph.Main.Producer(c.Input[1])!.OpType));
    }

    [Fact]
    public async Task CalibrationData_OfTheWrongShape_IsACleanErrorNamingTheInput()
    {
        // Photos are [N,3,224,224]; the CNN takes [N,1,28,28].
        var output = Path.Combine(RealModels.TempDir("quantize-bad-shape"), "out.onnx");
        var run = await Run("quantize", RealModels.CnnSample, "-o", output, "--calibration", $"images:{Path.Combine(RealModels.SamplesDir, "images")}");
        run.AssertCleanFailure(ErrorReporter.Failure);
        Assert.Contains("model input 'input' wants [N,1,28,28]", run.Err);
        Assert.False(File.Exists(output));
    }

    [Theory]
    [InlineData("--max-drop needs --eval", "--max-drop", "0.5")]
    [InlineData("--metric only applies with --max-drop", "--metric", "cosine")]
    [InlineData("--time-budget only applies with --max-drop", "--time-budget", "10")]
    [InlineData("'Softmax' is not an op static quantization handles", "--exclude-ops", "Softmax")]
    [InlineData("--max-drop takes a value in [0, 2] for the cosine metric", "--max-drop", "3", "--metric", "cosine", "--eval", "TEST")]
    [InlineData("--max-drop applies to static quantization", "--max-drop", "1", "--dynamic", "--eval", "TEST")]
    public async Task BadBudgetOptions_AreCleanErrors_AndWriteNothing(string message, params string[] extra)
    {
        var output = Path.Combine(RealModels.TempDir("quantize-budget-bad"), "out.onnx");
        var args = new List<string> { "quantize", RealModels.CnnSample, "-o", output, "--calibration", Train };
        args.AddRange(extra.Select(a => a == "TEST" ? Test : a));
        var run = await Run([.. args]);
        run.AssertCleanFailure(ErrorReporter.Failure);
        Assert.Contains(message, run.Err);
        Assert.False(File.Exists(output));
    }
}
