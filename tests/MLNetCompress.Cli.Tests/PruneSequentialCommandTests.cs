using MLNetCompress.Onnx.Proto;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

public class PruneSequentialCommandTests
{
    [Fact]
    public async Task Structured_Sequential_RefitsTheCnnLayerByLayer_AndWritesAVerifiedSmallerModel()
    {
        var dir = RealModels.TempDir("prune-structured-sequential-cli");
        var output = Path.Combine(dir, "cnn.seq50.onnx");
        var run = await CliRunner.Run("prune", RealModels.CnnSample, "-o", output, "--structured", "--channels", "0.5", "--reconstruct",
            "--sequential", "--calibration", $"fashion-mnist:{RealModels.FashionMnistSubset}:train", "--min-cosine", "0.9", "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        var shapes = ModelProto.Parser.ParseFrom(File.ReadAllBytes(output)).Graph.Initializer.ToDictionary(t => t.Name, t => t.Dims.ToArray());
        Assert.Equal([32L, 16, 3, 3], shapes["features.3.weight"]);
    }

    [Fact]
    public async Task Structured_Sequential_WithoutReconstruct_FailsCleanly()
    {
        var output = Path.Combine(RealModels.TempDir("prune-structured-sequential-bad"), "out.onnx");
        var run = await CliRunner.Run("prune", RealModels.CnnSample, "-o", output, "--structured", "--channels", "0.3", "--sequential");
        run.AssertCleanFailure(1);
        Assert.Contains("--sequential", run.Err);
        Assert.False(File.Exists(output));
    }
}
