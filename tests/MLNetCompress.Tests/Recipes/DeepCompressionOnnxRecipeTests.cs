using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Pruning;
using MLNetCompress.Recipes;
using MLNetCompress.Recipes.Steps;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Xunit.Abstractions;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Recipes;

/// <summary>onnx-samples/recipes/deep-compression-onnx.json: the .onnx file alone (no pack) 20× smaller than the CNN sample.</summary>
public class DeepCompressionOnnxRecipeTests(ITestOutputHelper output)
{
    private static Recipe Shipped() => Recipe.Load(Path.Combine(RealModels.SamplesDir, "recipes", "deep-compression-onnx.json"));

    [Fact]
    public void OnTheCnn_TheOnnxFileAloneIsTwentyTimesSmaller_KeepsTheTestAccuracy_AndFoldsAtLoad()
    {
        var cnn = RealModels.CnnSample;
        var recipe = Shipped();
        Assert.True(recipe.NeedsCalibration);
        IReadOnlyList<ModelInputInfo> inputs;
        using (var runner = ModelRunner.Load(cnn)) inputs = runner.Inputs;
        var outPath = Path.Combine(RealModels.TempDir("recipe-deep-onnx"), "cnn.deep-onnx.onnx");
        var result = RecipeRunner.Run(cnn, recipe, new RecipeRunOptions
        {
            OutputPath = outPath,
            Calibration = new FashionMnistFeed(RealModels.FashionMnistSubset, inputs, FashionMnistSplit.Train),
        });

        long before = new FileInfo(cnn).Length, after = new FileInfo(outPath).Length;
        output.WriteLine($"{before:N0} -> {after:N0} bytes ({(double)before / after:F2}x); " +
                         string.Join("; ", result.Passes.Single(p => p.PassName == "sparse-storage").Changes));
        Assert.True(before >= 20 * after, $"{after:N0} bytes is not 20x smaller than {before:N0}");
        Assert.Contains(result.Layers, l => l.Weight.StartsWith("classifier.1.weight", StringComparison.Ordinal)
                                            && l.StorageAfter.StartsWith("bitmask", StringComparison.Ordinal));

        // Accuracy on the bundled 1,000 test images against the float model on the same rows. The full 10,000-image
        // test set (not in CI) gives 91.42% -> 91.25%; on 1,000 rows a few images more or less are within noise.
        var eval = ModelComparer.Compare(cnn, outPath, new FashionMnistFeed(RealModels.FashionMnistSubset, inputs, FashionMnistSplit.Test),
            new EvalOptions { BatchSize = 250, WarmupRuns = 0, MinLatencySamples = 1 }).Outputs[0];
        double fp32 = eval.BaselineAccuracy!.Value, compressed = eval.CandidateAccuracy!.Value;
        output.WriteLine($"test-subset accuracy {fp32:P2} -> {compressed:P2} over {eval.Rows} rows");
        Assert.Equal(1000, eval.Rows);
        Assert.True(compressed >= fp32 - 0.015, $"accuracy {fp32:P2} -> {compressed:P2}");

        // ONNX Runtime computes every weight back when the session is created: the Conv/Gemm weights are plain float initializers.
        var optimized = OptimizedByOrt(outPath);
        Assert.DoesNotContain(optimized.Main.Nodes, n => n.OpType is "BitShift" or "CumSum" or "Gather" or "Cast");
        Assert.Equal(4, AssertFolded(optimized, "Conv", "Gemm", "FusedConv", "FusedGemm"));
    }

    [Fact]
    public void SparseStorageStep_ReadsItsFormat_AndRejectsAnUnknownOne()
    {
        var recipe = Recipe.Parse("""{"steps":[{"step":"sparse-storage","format":"bitmask","minElements":64}]}""");
        var step = Assert.IsType<SparseStorageStep>(Assert.Single(recipe.Steps));
        Assert.Equal(SparseFormat.Bitmask, step.Options.Format);
        Assert.Equal(64, step.Options.MinElements);
        Assert.Equal(SparseFormat.Coo, Assert.IsType<SparseStorageStep>(Recipe.Parse("""{"steps":[{"step":"sparse-storage"}]}""").Steps[0]).Options.Format);
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse("""{"steps":[{"step":"sparse-storage","format":"zip"}]}"""));
        output.WriteLine(e.Message);
        Assert.Contains("format", e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain('\n', e.Message);
        // A misspelt field lists the real ones, format among them.
        e = Assert.Throws<RecipeException>(() => Recipe.Parse("""{"steps":[{"step":"sparse-storage","fromat":"auto"}]}"""));
        Assert.EndsWith("fields of sparse-storage: exclude, format, maxSizeRatio, minElements", e.Message, StringComparison.Ordinal);
    }
}
