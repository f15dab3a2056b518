using MLNetCompress.Onnx.Proto;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

public class CompressCommandTests
{
    private static string Recipe(string name) => Path.Combine(RealModels.SamplesDir, "recipes", name + ".json");

    [Fact]
    public async Task Compress_TheCnnWithTheInt8SpeedRecipe_WritesAVerifiedQdqModel()
    {
        var output = Path.Combine(RealModels.TempDir("compress-cli"), "cnn.int8.onnx");
        var run = await CliRunner.Run("compress", RealModels.CnnSample, "--recipe", Recipe("int8-speed"), "-o", output,
            "--calibration", $"fashion-mnist:{RealModels.FashionMnistSubset}:train", "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.Contains("qdq-quantization", run.Out);
        Assert.Contains("min cosine", run.Out);
        var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(output)).Graph;
        Assert.Contains(graph.Node, n => n.OpType == "QuantizeLinear");
        Assert.True(new FileInfo(output).Length * 3 < new FileInfo(RealModels.CnnSample).Length);
    }

    [Fact]
    public async Task Compress_ARecipeWithoutData_NeedsNoCalibration()
    {
        var dir = RealModels.TempDir("compress-cli-nodata");
        var recipe = Path.Combine(dir, "k16.json");
        File.WriteAllText(recipe, """{"name":"k16","steps":[{"step":"cluster","clusters":16,"init":"linear"}]}""");
        var output = Path.Combine(dir, "mlp.k16.onnx");
        var run = await CliRunner.Run("compress", RealModels.MlpSample, "-r", recipe, "-o", output, "--min-cosine", "0.98", "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.True(new FileInfo(output).Length * 6 < new FileInfo(RealModels.MlpSample).Length);
    }

    [Theory]
    [InlineData("""{"steps":[{"step":"clustr"}]}""", "error: --recipe bad.json: recipe steps[0] (\"clustr\"): unknown step \"clustr\"; use one of")]
    [InlineData("""{"steps":[{"step":"cluster","clusters":1}]}""", "error: --recipe bad.json: recipe steps[0] (\"cluster\"): Clusters is 1; it must be in [2, 256] (field \"clusters\")")]
    [InlineData("""{"name":"q","steps":[{"step":"quantize-static"}]}""", "error: recipe 'q' calibrates on data; pass --calibration SPEC")]
    public async Task Compress_BadRecipes_AreOneLineErrors_AndWriteNothing(string json, string expected)
    {
        var dir = RealModels.TempDir("compress-cli-bad");
        var recipe = Path.Combine(dir, "bad.json");
        File.WriteAllText(recipe, json);
        var output = Path.Combine(dir, "out.onnx");
        var run = await CliRunner.Run("compress", RealModels.MlpSample, "--recipe", recipe, "-o", output);
        run.AssertCleanFailure(1);
        Assert.StartsWith(expected, run.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task Compress_MissingRecipeFile_IsAOneLineError()
    {
        var output = Path.Combine(RealModels.TempDir("compress-cli-missing"), "out.onnx");
        var run = await CliRunner.Run("compress", RealModels.MlpSample, "--recipe", "no-such-recipe.json", "-o", output);
        run.AssertCleanFailure(1);
        Assert.Contains("recipe file 'no-such-recipe.json' does not exist; check the path", run.Err);
    }
}
