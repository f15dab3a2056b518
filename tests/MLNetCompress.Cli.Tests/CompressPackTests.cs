using System.Text.Json;
using MLNetCompress.Packing;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

/// <summary><c>compress --pack OUT.mlcz</c>: the written model is packed too, and the size table and the report end with the container.</summary>
public class CompressPackTests
{
    [Fact]
    public async Task Compress_WithPack_WritesTheContainer_AndTheStageTableEndsWithIt()
    {
        var dir = RealModels.TempDir("compress-cli-pack");
        var recipe = Path.Combine(dir, "k16.json");
        File.WriteAllText(recipe, """{"name":"k16","steps":[{"step":"prepare"},{"step":"cluster","clusters":16,"init":"linear"}]}""");
        var output = Path.Combine(dir, "mlp.k16.onnx");
        var packed = Path.Combine(dir, "mlp.k16.mlcz");
        var report = Path.Combine(dir, "report");
        var run = await CliRunner.Run("compress", RealModels.MlpSample, "-r", recipe, "-o", output, "--min-cosine", "0.98", "--pack", packed, "--report", report, "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.Equal(File.ReadAllBytes(output), PackedModel.Load(packed));
        Assert.Contains("Size after each stage", run.Out);
        Assert.Contains("step 2: cluster", run.Out);
        Assert.Contains("pack (.mlcz)", run.Out);

        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(report, "report.json")));
        var stages = json.RootElement.GetProperty("stages").EnumerateArray().ToList();
        Assert.Equal(["original", "step 1: prepare", "step 2: cluster", "pack (.mlcz)"], stages.Select(s => s.GetProperty("stage").GetString()));
        Assert.Equal(new FileInfo(RealModels.MlpSample).Length, stages[0].GetProperty("bytes").GetInt64());
        Assert.Equal(new FileInfo(output).Length, stages[2].GetProperty("bytes").GetInt64());
        Assert.Equal(new FileInfo(packed).Length, stages[3].GetProperty("bytes").GetInt64());
        Assert.Contains("| pack \\(.mlcz\\) |", File.ReadAllText(Path.Combine(report, "report.md")));
    }

    [Fact]
    public async Task Compress_PackIntoAFolderOrOverTheOutput_IsAOneLineError_AndWritesNothing()
    {
        var dir = RealModels.TempDir("compress-cli-pack-bad");
        var recipe = Path.Combine(dir, "k16.json");
        File.WriteAllText(recipe, """{"steps":[{"step":"cluster","clusters":16}]}""");
        var output = Path.Combine(dir, "out.onnx");
        var folder = await CliRunner.Run("compress", RealModels.MlpSample, "-r", recipe, "-o", output, "--pack", dir);
        folder.AssertCleanFailure(1);
        Assert.Contains("--pack", folder.Err);
        var same = await CliRunner.Run("compress", RealModels.MlpSample, "-r", recipe, "-o", output, "--pack", output);
        same.AssertCleanFailure(1);
        Assert.Contains("is also the --output model", same.Err);
        Assert.False(File.Exists(output));
    }
}
