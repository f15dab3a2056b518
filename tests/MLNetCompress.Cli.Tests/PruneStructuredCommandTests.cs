using MLNetCompress.Onnx.Proto;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

public class PruneStructuredCommandTests
{
    private static string Train => $"fashion-mnist:{RealModels.FashionMnistSubset}:train";

    private static Dictionary<string, long[]> Shapes(string model) =>
        ModelProto.Parser.ParseFrom(File.ReadAllBytes(model)).Graph.Initializer.ToDictionary(t => t.Name, t => t.Dims.ToArray());

    [Fact]
    public async Task Structured_HalfTheCnnChannels_ChosenAndRefittedByReconstruction_WritesASmallerVerifiedModel()
    {
        var dir = RealModels.TempDir("prune-structured-cli");
        var output = Path.Combine(dir, "cnn.s50.onnx");
        var run = await CliRunner.Run("prune", RealModels.CnnSample, "-o", output, "--structured", "--channels", "0.5",
            "--criterion", "reconstruction", "--reconstruct", "--calibration", Train, "--min-cosine", "0.9", "--report", dir, "-q");
        Assert.True(run.ExitCode == 0, run.Err);

        var shapes = Shapes(output);
        Assert.Equal([16L, 1, 3, 3], shapes["features.0.weight"]);
        Assert.Equal([32L, 16, 3, 3], shapes["features.3.weight"]);
        Assert.Equal([128L, 32 * 7 * 7], shapes["classifier.1.weight"]); // a channel is 7×7 features after the Flatten
        Assert.Equal([10L, 128], shapes["classifier.4.weight"]);
        Assert.True(new FileInfo(output).Length * 3 < new FileInfo(RealModels.CnnSample).Length);
        Assert.True(File.Exists(Path.Combine(dir, "report.json")));
    }

    [Fact]
    public async Task Structured_L1_RoundsTheKeptChannelsToAMultiple_AndSkipsTheLayerThatWritesTheOutput()
    {
        var dir = RealModels.TempDir("prune-structured-cli-l1");
        var output = Path.Combine(dir, "mlp.s30.onnx");
        var run = await CliRunner.Run("prune", RealModels.MlpSample, "-o", output, "--structured", "--channels", "0.3", "--round-to", "16",
            "--calibration", Train, "--min-cosine", "0", "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        var shapes = Shapes(output);
        // 256·0.7 = 179.2 → 176 and 128·0.7 = 89.6 → 96 (nearest multiples of 16); the logits layer keeps its 10.
        Assert.Equal([176L, 784], shapes["net.0.weight"]);
        Assert.Equal([96L, 176], shapes["net.2.weight"]);
        Assert.Equal([10L, 96], shapes["net.4.weight"]);
    }

    [Theory]
    [InlineData(1, "--structured")]                                            // no --channels
    [InlineData(1, "--channels", "0.3")]                                       // no --structured
    [InlineData(1, "--structured", "--channels", "0.3", "--sparsity", "0.5")]  // two kinds of pruning
    [InlineData(1, "--structured", "--channels", "0.3", "--criterion", "activation")] // activation without data
    [InlineData(1, "--structured", "--channels", "0.3", "--reconstruct")]      // reconstruction without data
    [InlineData(1, "--structured", "--channels", "0.3", "--criterion", "l2")]
    [InlineData(1, "--structured", "--channels", "0.3", "--criterion", "reconstruction")]   // needs --reconstruct
    [InlineData(2, "--structured", "--channels", "1.5")]                       // out of range: a parse error
    [InlineData(2, "--structured", "--channels", "0.3", "--round-to", "0")]
    public async Task Structured_BadOptions_FailCleanly_AndWriteNothing(int exitCode, params string[] options)
    {
        var output = Path.Combine(RealModels.TempDir("prune-structured-bad"), "out.onnx");
        var run = await CliRunner.Run(["prune", RealModels.CnnSample, "-o", output, .. options]);
        if (exitCode == 1) run.AssertCleanFailure(1);
        else Assert.Equal(2, run.ExitCode);
        Assert.False(File.Exists(output));
    }
}
