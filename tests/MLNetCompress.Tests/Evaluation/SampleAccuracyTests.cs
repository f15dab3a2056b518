using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.Evaluation;

/// <summary>
/// The samples' accuracy on the bundled subsets, as our IDX reader + ONNX Runtime measure it, must equal
/// the counts that tools/samples/eval_subset.py measured independently (NumPy interpreter of the same
/// .onnx files, documented in onnx-samples/README.md).
/// </summary>
public class SampleAccuracyTests
{
    [Theory]
    [InlineData("fashion_mnist_mlp.onnx", "test", 895)]
    [InlineData("fashion_mnist_mlp.onnx", "train", 928)]
    [InlineData("fashion_mnist_cnn.onnx", "test", 921)]
    [InlineData("fashion_mnist_cnn.onnx", "train", 950)]
    public void SubsetAccuracy_MatchesTheIndependentPythonEvaluation(string model, string split, int expectedCorrect)
    {
        var path = Path.Combine(RealModels.SamplesDir, model);
        using var runner = ModelRunner.Load(path);
        var feed = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:{split}", runner.Session);
        var report = ModelComparer.Compare(path, path, feed, new EvalOptions { BatchSize = 250, WarmupRuns = 0, MinLatencySamples = 1 });
        Assert.Equal(1000, report.Rows);
        var logits = report.Outputs.Single(o => o.Name == "logits");
        Assert.Equal(expectedCorrect, (int)Math.Round(logits.BaselineAccuracy!.Value * 1000));
    }
}
