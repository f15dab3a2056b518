using MLNetCompress.Onnx.Proto;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

public class ClusterCommandTests
{
    [Fact]
    public async Task Cluster_TheMlpInto16Centroids_WritesA4BitModel()
    {
        var dir = RealModels.TempDir("cluster-cli");
        var output = Path.Combine(dir, "mlp.k16.onnx");
        var run = await CliRunner.Run("cluster", RealModels.MlpSample, "-o", output, "--clusters", "16", "--init", "linear",
            "--calibration", $"fashion-mnist:{RealModels.FashionMnistSubset}:test", "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.Contains("4-bit (uint8 nibbles) indices, 16 float centroids", run.Out);
        // 4 bits instead of 32 for the two big weights (the 1,280-value last layer too).
        Assert.True(new FileInfo(output).Length * 6 < new FileInfo(RealModels.MlpSample).Length);
        var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(output)).Graph;
        Assert.Contains(graph.Node, n => n.OpType == "Gather" && n.Output[0] == "net.0.weight_flat");
    }

    [Fact]
    public async Task Cluster_Refine_RefinesCodebooksOnTheCalibrationData_AndReportsTheErrorBeforeAndAfter()
    {
        var output = Path.Combine(RealModels.TempDir("cluster-cli-refine"), "mlp.k8.refined.onnx");
        var run = await CliRunner.Run("cluster", RealModels.MlpSample, "-o", output, "--clusters", "8", "--refine",
            "--calibration", $"fashion-mnist:{RealModels.FashionMnistSubset}:train", "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.Matches(@"output error [0-9.]+% -> [0-9.]+% \(refined over \d+ vectors\)", run.Out);
        Assert.True(File.Exists(output));
    }

    [Fact]
    public async Task Cluster_RefineWithoutCalibration_IsAOneLineError_AndWritesNothing()
    {
        var output = Path.Combine(RealModels.TempDir("cluster-cli-refine-bad"), "out.onnx");
        var run = await CliRunner.Run("cluster", RealModels.MlpSample, "-o", output, "--clusters", "8", "--refine");
        Assert.Equal(1, run.ExitCode);
        Assert.Equal("error: --refine needs --calibration SPEC (the data the codebooks are refined on)", run.Err.Trim());
        Assert.False(File.Exists(output));
    }

    [Theory]
    [InlineData(2, "--clusters", "300")]
    [InlineData(2, "--clusters", "16", "--init", "random")]
    [InlineData(2)]                                  // --clusters is required
    public async Task Cluster_BadOptions_AreUsageErrors_AndWriteNothing(int exitCode, params string[] options)
    {
        var output = Path.Combine(RealModels.TempDir("cluster-cli-bad"), "out.onnx");
        var run = await CliRunner.Run(["cluster", RealModels.MlpSample, "-o", output, .. options]);
        Assert.Equal(exitCode, run.ExitCode);
        Assert.StartsWith("error: ", run.Err);
        Assert.False(File.Exists(output));
    }
}
