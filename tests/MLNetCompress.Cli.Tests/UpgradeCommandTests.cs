using MLNetCompress.Onnx;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

public class UpgradeCommandTests
{
    [Fact]
    public async Task Upgrade_ResNet18To13_VerifiesAndWrites()
    {
        var output = Path.Combine(RealModels.TempDir("upgrade"), "resnet18.op13.onnx");
        var run = await CliRunner.Run("upgrade", RealModels.ResNet18, "--opset", "13", "-o", output, "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        var graph = ModelGraph.Load(output);
        Assert.Equal(13, graph.OnnxOpset);
        Assert.Equal(7, graph.IrVersion);
        Assert.Contains("opset-upgrade", run.Out);
        Assert.Contains("ai.onnx opset 8 -> 13", run.Out);
    }

    [Theory]
    [InlineData("99")]
    [InlineData("3")]
    public async Task Upgrade_OpsetOutOfRange_IsAUsageError(string opset)
    {
        var output = Path.Combine(RealModels.TempDir("upgrade-bad"), "out.onnx");
        var run = await CliRunner.Run("upgrade", RealModels.ResNet18, "--opset", opset, "-o", output);
        run.AssertCleanFailure(2);
        Assert.Contains("--opset", run.Err);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task Upgrade_ChangedOpWithoutRewrite_FailsNamingTheOp_WritesNothing()
    {
        var dir = RealModels.TempDir("upgrade-refused");
        var model = TestModels.Model(18)
            .Input("x", OnnxDataType.Float, 1, 4, 2)
            .Initializer(TestTensors.Float("s", [2], 1, 1)).Initializer(TestTensors.Float("b", [2], 0, 0))
            .Node("GroupNormalization", ["x", "s", "b"], ["y"], Attr.Int("num_groups", 2))
            .Output("y", OnnxDataType.Float, 1, 4, 2)
            .Save(Path.Combine(dir, "gn.onnx"));
        var output = Path.Combine(dir, "out.onnx");
        var run = await CliRunner.Run("upgrade", model, "--opset", "21", "-o", output);
        run.AssertCleanFailure(1);
        Assert.Contains("GroupNormalization", run.Err);
        Assert.Contains("opset 21", run.Err);
        Assert.False(File.Exists(output));
    }
}
