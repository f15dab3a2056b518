using System.Text.RegularExpressions;
using MLNetCompress.Cli.Commands;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Testing;
using Xunit.Abstractions;

namespace MLNetCompress.Cli.Tests;

/// <summary><c>quantize --mode storage</c>: the CNN sample end to end, the expansion in the written file, bad combinations.</summary>
public class QuantizeStorageCommandTests(ITestOutputHelper log)
{
    private static Task<CliResult> Run(params string[] args) => CliRunner.Run(args);

    private static string Subset => $"fashion-mnist:{RealModels.FashionMnistSubset}:test";

    [Theory]
    [InlineData("int4 --per-channel", 7.0, "weights int4, scales per output channel")]
    [InlineData("uint4 --per-channel", 7.0, "weights uint4, scales per output channel")]
    [InlineData("binary --block-size 64 --min-cosine 0.5", 18.0, "weights binary, scales blocks of 64 along the reduction axis")]
    [InlineData("int2 --per-channel --clip --min-cosine 0.5", 12.0, "weights int2, scales per output channel, clipped")]
    public async Task CnnSample_EndToEnd_SmallerFile_PrintsAccuracyAndLatencyRatio(string options, double minRatio, string method)
    {
        var output = Path.Combine(RealModels.TempDir("quantize-storage"), options.Split(' ')[0] + ".onnx");
        var run = await Run(["quantize", RealModels.CnnSample, "-o", output, "-c", Subset, "--eval-rows", "64", "--mode", "storage",
            "--weights", .. options.Split(' ')]);
        log.WriteLine(run.Out + run.Err);
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.Contains(method, run.Out);
        Assert.Contains("lookup-table Gather (opset 13)", run.Out);
        if (options.StartsWith('u')) Assert.Contains("offsets added after the scales", run.Out);
        Assert.Contains("latency ratio", run.Out);
        // Accuracy on the bundled subset, before and after, as the fidelity line prints it.
        Assert.Matches(new Regex(@"accuracy \d+\.\d% -> \d+\.\d%"), run.Out);

        long before = new FileInfo(RealModels.CnnSample).Length, after = new FileInfo(output).Length;
        Assert.True(before >= minRatio * after, $"{before} -> {after} bytes");
        // The file holds the packed bytes and the shared table; the opset is the model's own.
        var graph = ModelGraph.Load(output);
        Assert.Equal(13, graph.OnnxOpset);
        Assert.Contains(graph.Main.Nodes, n => n.OpType == "Gather");
        Assert.Contains(graph.Main.Initializers, t => t.DataType == (int)OnnxDataType.UInt8);
    }

    [Fact]
    public async Task BinaryBelowTheDefaultCosineGate_FailsNamingTheFix_AndWritesNothing()
    {
        var output = Path.Combine(RealModels.TempDir("quantize-storage-gate"), "binary.onnx");
        var run = await Run("quantize", RealModels.CnnSample, "-o", output, "-c", Subset, "--mode", "storage", "--weights", "binary");
        run.AssertCleanFailure(ErrorReporter.Failure);
        Assert.Contains("verification failed", run.Err);
        Assert.Contains("--min-cosine", run.Err);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task Opset6Model_IsRefusedNamingTheUpgrade()
    {
        var dir = RealModels.TempDir("quantize-storage-old");
        var model = TestModels.Model(6, 3).Input("x", OnnxDataType.Float, 1, 8, 6, 6)
            .Initializer(TestTensors.Random("W", [16, 8, 3, 3], 1))
            .Node("Conv", ["x", "W"], ["y"], Attr.Ints("pads", 1, 1, 1, 1))
            .Output("y", OnnxDataType.Float, 1, 16, 6, 6)
            .InitializersAsInputs()
            .Save(Path.Combine(dir, "old.onnx"));
        var output = Path.Combine(dir, "out.onnx");
        var run = await Run("quantize", model, "-o", output, "-c", "random", "--mode", "storage", "--weights", "int4");
        run.AssertCleanFailure(ErrorReporter.Failure);
        Assert.Contains("opset 6", run.Err);
        Assert.Contains("mlnet-compress upgrade", run.Err);
        Assert.False(File.Exists(output));
    }

    [Theory]
    [InlineData("--mode storage --weights int3", "unknown --weights 'int3'")]
    [InlineData("--mode storage --weights uint2", "expected int8, uint8, int4, uint4, int2 or binary")]
    [InlineData("--mode storage --weights uint4 --clip", "uint4 already fits each group's min..max range with a zero point (drop --clip)")]
    [InlineData("--weights int4", "--weights applies to --mode storage")]
    [InlineData("--clip", "--clip applies to --mode storage")]
    [InlineData("--mode storage --weights int4 --block-size 12", "multiple of 8")]
    [InlineData("--mode storage --weights int4 --method entropy", "--method does not apply to --mode storage")]
    [InlineData("--mode storage --weights int4 --symmetric", "--symmetric does not apply to --mode storage")]
    [InlineData("--mode storage --weights binary --clip", "--clip applies to --weights int8, int4 and int2")]
    public async Task BadCombinations_AreCleanErrors_AndWriteNothing(string options, string expected)
    {
        var output = Path.Combine(RealModels.TempDir("quantize-storage-bad"), "out.onnx");
        var run = await Run(["quantize", RealModels.MlpSample, "-o", output, "-c", Subset, .. options.Split(' ')]);
        run.AssertCleanFailure(ErrorReporter.Failure);
        Assert.Contains(expected, run.Err);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task Help_DocumentsTheStorageOptions()
    {
        var run = await Run("quantize", "--help");
        Assert.Equal(0, run.ExitCode);
        foreach (var text in new[] { "--weights", "int2", "binary", "XNOR-Net", "--clip", "uint8", "uint4", "zero point" })
            Assert.Contains(text, run.Out);
    }
}
