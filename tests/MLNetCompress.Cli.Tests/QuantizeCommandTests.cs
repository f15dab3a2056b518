using System.CommandLine;
using MLNetCompress.Cli.Commands;
using MLNetCompress.Onnx;
using MLNetCompress.Testing;
using Xunit.Abstractions;

namespace MLNetCompress.Cli.Tests;

public class QuantizeCommandTests(ITestOutputHelper log)
{
    /// <summary>Runs the command line with <c>quantize</c> registered (added here when CliApp does not list it yet),
    /// handling errors the way <see cref="CliApp.RunAsync(string[], TextWriter, TextWriter, CancellationToken)"/> does.</summary>
    private static async Task<CliResult> Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var globals = new GlobalOptions();
        var root = CliApp.BuildRoot(globals, stdout, stderr, interactive: false);
        if (!root.Subcommands.Any(c => c.Name == "quantize"))
            root.Subcommands.Add(QuantizeCommand.Create(r => new CliContext(stdout, stderr, false, r.GetValue(globals.Quiet), r.GetValue(globals.Verbose))));
        var parse = root.Parse(args);
        int code;
        if (parse.Errors.Count > 0)
        {
            stderr.WriteLine($"error: {ErrorReporter.OneLine(parse.Errors[0].Message)}");
            code = ErrorReporter.Usage;
        }
        else
        {
            try
            {
                code = await parse.InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
            }
            catch (Exception e)
            {
                var (c, message) = ErrorReporter.Describe(e);
                stderr.WriteLine($"error: {message}");
                code = c;
            }
        }
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }

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
}
