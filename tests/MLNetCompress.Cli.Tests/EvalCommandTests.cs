using System.Text.Json;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

public class EvalCommandTests
{
    private static string Subset => $"fashion-mnist:{RealModels.FashionMnistSubset}:test";

    [Fact]
    public async Task MlpAgainstItself_IsIdentical()
    {
        var mlp = RealModels.MlpSample;
        var run = await CliRunner.Run("eval", "--baseline", mlp, "--candidate", mlp, "--data", Subset, "--n", "500", "--json");
        Assert.True(run.ExitCode == 0, run.Err);
        using var doc = JsonDocument.Parse(run.Out);
        var root = doc.RootElement;
        Assert.Equal(500, root.GetProperty("rows").GetInt64());
        Assert.Equal(new FileInfo(mlp).Length, root.GetProperty("baselineBytes").GetInt64());
        Assert.Equal(1.0, root.GetProperty("sizeRatio").GetDouble());
        var output = root.GetProperty("outputs")[0];
        Assert.Equal(1.0, output.GetProperty("meanCosine").GetDouble());
        Assert.Equal(1.0, output.GetProperty("minCosine").GetDouble());
        Assert.Equal(0.0, output.GetProperty("maxAbsDiff").GetDouble());
        Assert.Equal(1.0, output.GetProperty("top1Agreement").GetDouble());
        double accuracy = output.GetProperty("baselineAccuracy").GetDouble();
        Assert.Equal(accuracy, output.GetProperty("candidateAccuracy").GetDouble());
        Assert.InRange(accuracy, 0.7, 1.0); // a trained model on real images
        Assert.True(root.GetProperty("baselineMedianMs").GetDouble() > 0);
        Assert.True(root.GetProperty("peakWorkingSetBytes").GetInt64() > 0);
    }

    [Fact]
    public async Task Table_ShowsSizesLatencyFidelityAndAccuracy()
    {
        var mlp = RealModels.MlpSample;
        var run = await CliRunner.Run("eval", "--baseline", mlp, "--candidate", mlp, "--data", Subset, "--n", "200", "--batch-size", "50", "--threads", "1");
        Assert.True(run.ExitCode == 0, run.Err);
        foreach (var s in new[] { "file bytes (with external data)", "median latency per batch", "peak memory", "cosine mean", "cosine min",
                     "max abs diff", "top-1 agreement", "accuracy baseline", "accuracy candidate", "in batches of 50", "100.0%" })
            Assert.Contains(s, run.Out);
        Assert.Matches(@"logits +1\.000000 +1\.000000 +0 +100\.0%", run.Out);
    }

    [Fact]
    public async Task BadDataSpec_ExitsOne()
    {
        var mlp = RealModels.MlpSample;
        var run = await CliRunner.Run("eval", "--baseline", mlp, "--candidate", mlp, "--data", "bogus:thing");
        run.AssertCleanFailure(1);
        Assert.Contains("bogus", run.Err);
    }

    [Fact]
    public async Task MissingCandidate_ExitsOne_NamingTheOption()
    {
        var run = await CliRunner.Run("eval", "--baseline", RealModels.MlpSample, "--candidate", "/nonexistent/model.onnx", "--data", Subset);
        run.AssertCleanFailure(1);
        Assert.Contains("--candidate", run.Err);
        Assert.Contains("/nonexistent/model.onnx", run.Err);
    }

    [Fact]
    public async Task ModelsWithDifferentInputs_ExitOne()
    {
        var run = await CliRunner.Run("eval", "--baseline", RealModels.MlpSample, "--candidate", RealModels.ResNet18, "--data", Subset, "--n", "32");
        run.AssertCleanFailure(1);
        Assert.Contains("cannot compare the models", run.Err);
    }
}
