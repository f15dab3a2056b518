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

    [Fact]
    public async Task LowRank_SearchCosine_TimesEachTrial_AndWritesAModelKeepingTheCosine()
    {
        var dir = RealModels.TempDir("lowrank-cli-search");
        var output = Path.Combine(dir, "cnn.search.onnx");
        var run = await CliRunner.Run("lowrank", RealModels.CnnSample, "-o", output, "--search-cosine", "0.99",
            "--calibration", $"fashion-mnist:{RealModels.FashionMnistSubset}:train", "--calibration-rows", "64",
            "--search-data", Probes, "--search-rows", "16", "--search-ratios", "0.25", "--min-cosine", "0.9");
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.True(File.Exists(output));
        // conv2 and fc1 are each tried once, timed and scored, as it happens.
        Assert.Equal(2, run.Err.Split('\n').Count(l => l.StartsWith("search trial: ", StringComparison.Ordinal)));
        Assert.Contains("search round 1:", run.Err);
    }

    [Theory]
    [InlineData("--search-cosine needs --calibration", "--search-cosine", "0.9")]
    [InlineData("--search-ratios, --search-rows and --search-data only apply with --search-cosine", "--rank-ratio", "0.5", "--search-ratios", "0.5")]
    [InlineData("--search-ratios takes comma-separated fractions", "--search-cosine", "0.9", "-c", "random", "--search-ratios", "0.5,2")]
    [InlineData("--search-cosine takes a cosine in (0, 1)", "--search-cosine", "1.5", "-c", "random")]
    [InlineData("give exactly one of", "--search-cosine", "0.9", "--energy", "0.9", "-c", "random")]
    [InlineData("--shrinkage applies to data-aware splits", "--rank-ratio", "0.5", "--shrinkage", "0.5")]
    [InlineData("--shrinkage takes a weight in [0, 1]", "--rank-ratio", "0.5", "-c", "random", "--data-aware", "--shrinkage", "1.5")]
    public async Task LowRank_BadSearchOptions_FailWithOneLine(string expected, params string[] args)
    {
        var output = Path.Combine(RealModels.TempDir("lowrank-cli-search-bad"), "out.onnx");
        var run = await CliRunner.Run(["lowrank", RealModels.MlpSample, "-o", output, .. args]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains(expected, run.Err);
        Assert.DoesNotContain("   at ", run.Err);
        Assert.False(File.Exists(output));
    }
}
