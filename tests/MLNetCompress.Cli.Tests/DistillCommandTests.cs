using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML;
using MLNetCompress.ML.Distillation;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

/// <summary>Soft labels of the CNN sample at T = 2 over the bundled Fashion-MNIST subset, made once for the class.</summary>
public sealed class DistillFixture
{
    public DistillFixture()
    {
        Dir = RealModels.TempDir("distill-cli");
        Train = Path.Combine(Dir, "train.idv");
        Test = Path.Combine(Dir, "test.csv");
        var options = new SoftLabelOptions { Teachers = [RealModels.CnnSample], Temperature = 2 };
        SoftLabelGenerator.Generate($"fashion-mnist:{RealModels.FashionMnistSubset}:train", Train, options);
        SoftLabelGenerator.Generate($"fashion-mnist:{RealModels.FashionMnistSubset}:test", Test, options);
    }

    public string Dir { get; }

    public string Train { get; }

    public string Test { get; }
}

public class DistillCommandTests(DistillFixture fixture) : IClassFixture<DistillFixture>
{
    [Fact]
    public async Task EndToEnd_WritesAStudent_AndReportsItsAccuracy()
    {
        var output = Path.Combine(fixture.Dir, "student.zip");
        var run = await CliRunner.Run("distill", "--soft-labels", fixture.Train, "--trainer", "lbfgs", "--alpha", "0.2", "--temperature", "2",
            "-o", output, "--seed", "1", "--iterations", "100", "--test", $"fashion-mnist:{RealModels.FashionMnistSubset}:test");
        Assert.True(run.ExitCode == 0, run.Err);
        foreach (var s in new[] { "1,000 rows, 10 classes, 784 features, T = 2", "LbfgsMaximumEntropy, alpha 0.2", "weighted rows", "targets below 0.001", "train accuracy", "test accuracy" })
            Assert.Contains(s, run.Out);
        Assert.True(File.Exists(output));
        Assert.Empty(Directory.GetFiles(fixture.Dir, ".*.tmp"));

        // The written model, scored independently on the test split's soft-label file, gives the printed accuracy.
        var ml = new MLContext(1);
        var model = ml.Model.Load(output, out _);
        var accuracy = StudentEvaluation.Accuracy(model, SoftLabelFile.Load(ml, fixture.Test));
        Assert.True(accuracy.Accuracy > 0.7, $"accuracy {accuracy.Accuracy}");
        var printed = Regex.Match(run.Out, @"test accuracy\s+([0-9.]+)%").Groups[1].Value;
        Assert.Equal(accuracy.Accuracy * 100, double.Parse(printed, CultureInfo.InvariantCulture), 2);
    }

    [Fact]
    public async Task LightGbm_WithATestSoftLabelFile()
    {
        var output = Path.Combine(fixture.Dir, "trees.zip");
        var run = await CliRunner.Run("distill", "-s", fixture.Train, "--trainer", "lightgbm", "-o", output, "--iterations", "3", "--threads", "1", "--test", fixture.Test);
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.Contains("LightGbm, alpha 0", run.Out);
        Assert.Matches(@"test accuracy\s+[0-9.]+% of 1,000", run.Out);
    }

    [Fact]
    public async Task MissingSoftLabelFile_IsOneLine()
    {
        var run = await CliRunner.Run("distill", "--soft-labels", "/nonexistent/labels.idv", "-o", Path.Combine(fixture.Dir, "x.zip"));
        run.AssertCleanFailure(1);
        Assert.Contains("/nonexistent/labels.idv", run.Err);
    }

    [Fact]
    public async Task BadTrainerName_IsOneLine()
    {
        var run = await CliRunner.Run("distill", "--soft-labels", fixture.Train, "--trainer", "svm", "-o", Path.Combine(fixture.Dir, "x.zip"));
        run.AssertCleanFailure(2);
        Assert.Contains("--trainer takes lbfgs, sdca or lightgbm, not 'svm'", run.Err);
    }

    [Theory]
    [InlineData("1.5")]
    [InlineData("-0.1")]
    public async Task AlphaOutsideZeroOne_IsOneLine(string alpha)
    {
        var run = await CliRunner.Run("distill", "--soft-labels", fixture.Train, "--alpha", alpha, "-o", Path.Combine(fixture.Dir, "x.zip"));
        run.AssertCleanFailure(2);
        Assert.Contains("--alpha", run.Err);
    }

    [Fact]
    public async Task TemperatureOtherThanTheFiles_IsOneLine()
    {
        var run = await CliRunner.Run("distill", "--soft-labels", fixture.Train, "--temperature", "5", "-o", Path.Combine(fixture.Dir, "x.zip"));
        run.AssertCleanFailure(1);
        Assert.Contains("temperature 2", run.Err);
    }

    [Fact]
    public async Task TreeOptionOnALinearStudent_IsOneLine()
    {
        var run = await CliRunner.Run("distill", "--soft-labels", fixture.Train, "--leaves", "8", "-o", Path.Combine(fixture.Dir, "x.zip"));
        run.AssertCleanFailure(1);
        Assert.Contains("lightgbm", run.Err);
    }
}
