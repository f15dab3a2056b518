using MLNetCompress.Onnx;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

public class LowRankCommandTests
{
    private static string Probes => $"fashion-mnist:{RealModels.FashionMnistSubset}:test";

    [Fact]
    public async Task LowRank_HalvesTheCnnFullyConnectedLayers_WritesAVerifiedSmallerModel()
    {
        var dir = RealModels.TempDir("lowrank-cli");
        var output = Path.Combine(dir, "cnn.lowrank.onnx");
        var run = await CliRunner.Run("lowrank", RealModels.CnnSample, "-o", output, "--target-params", "0.5",
            "--calibration", Probes, "--min-cosine", "0.98", "--report", dir, "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.True(File.Exists(Path.Combine(dir, "report.json")));

        // The 3136x256 layer became two Gemms with at most half its parameters; the file is smaller.
        var before = ModelGraph.Load(RealModels.CnnSample).Constants.Where(c => c.Dims.Length == 2).Sum(c => c.ElementCount);
        var after = ModelGraph.Load(output).Constants.Where(c => c.Dims.Length == 2).Sum(c => c.ElementCount);
        Assert.True(after <= before / 2 + 256 * 10, $"2-D weights {before} -> {after}");
        Assert.True(new FileInfo(output).Length < new FileInfo(RealModels.CnnSample).Length * 0.6);
    }

    [Fact]
    public async Task LowRank_WithoutARankCriterion_FailsCleanly_AndWritesNothing()
    {
        var output = Path.Combine(RealModels.TempDir("lowrank-cli-bad"), "out.onnx");
        var run = await CliRunner.Run("lowrank", RealModels.MlpSample, "-o", output);
        Assert.NotEqual(0, run.ExitCode);
        Assert.StartsWith("error:", run.Err.Trim());
        Assert.DoesNotContain("   at ", run.Err);
        Assert.False(File.Exists(output));
    }
}
