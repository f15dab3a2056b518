using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Recipes;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Xunit.Abstractions;

namespace MLNetCompress.Tests.Recipes;

/// <summary>Each recipe in onnx-samples/recipes on the models it names: the run verifies and writes, and the written
/// model is then judged again on rows the run never saw (the test split, other photos, other sentences).</summary>
public class ShippedRecipeTests(ITestOutputHelper output)
{
    private static Recipe Shipped(string name) => Recipe.Load(Path.Combine(RealModels.SamplesDir, "recipes", name + ".json"));

    /// <summary>The lowest per-row cosine of the first output between two models over a feed's rows.</summary>
    private static double MinCosine(string a, string b, IDataFeed feed, int rows)
    {
        using var ra = ModelRunner.Load(a);
        using var rb = ModelRunner.Load(b);
        double min = 1;
        int seen = 0;
        foreach (var batch in feed.Batches(8, rows))
        {
            var ya = ra.Run(batch).Outputs[0];
            var yb = rb.Run(batch).Outputs[0];
            for (int r = 0; r < ya.Rows; r++, seen++)
            {
                ReadOnlySpan<float> x = ya.Row(r), y = yb.Row(r);
                double dot = 0, nx = 0, ny = 0;
                for (int i = 0; i < x.Length; i++) { dot += (double)x[i] * y[i]; nx += (double)x[i] * x[i]; ny += (double)y[i] * y[i]; }
                min = Math.Min(min, dot / Math.Sqrt(nx * ny));
            }
        }
        Assert.True(seen > 0);
        return min;
    }

    private CompressionResult Run(string model, string recipeName, IDataFeed? calibration, string outName)
    {
        var recipe = Shipped(recipeName);
        var outPath = Path.Combine(RealModels.TempDir("recipe-" + recipeName), outName);
        var result = RecipeRunner.Run(model, recipe, new RecipeRunOptions { OutputPath = outPath, Calibration = calibration });
        output.WriteLine($"{recipeName} on {Path.GetFileName(model)}: {result.BytesBefore:N0} -> {result.BytesAfter:N0} bytes ({result.CompressionRatio:F2}x), " +
                         $"probe min cosine {result.Verification.MinCosine:F4}; passes {string.Join(", ", result.Passes.Select(p => p.PassName))}");
        Assert.True(File.Exists(outPath));
        Assert.True(result.Verification.MinCosine >= (recipe.MinCosine ?? 0.99));
        return result;
    }

    private static IDataFeed Mnist(string model, FashionMnistSplit split) =>
        new FashionMnistFeed(RealModels.FashionMnistSubset, ModelRunner.Load(model).Inputs, split);

    [Fact]
    public void Int8Speed_OnTheCnn_QuantizesEveryConvAndGemm_AndHoldsOnTheTestSplit()
    {
        var cnn = RealModels.CnnSample;
        var result = Run(cnn, "int8-speed", Mnist(cnn, FashionMnistSplit.Train), "cnn.int8.onnx");
        var written = ModelGraph.Load(result.OutputPath);
        Assert.Contains(written.Main.Nodes, n => n.OpType == "QuantizeLinear");
        Assert.DoesNotContain(written.Main.Nodes, n => n.OpType == "BatchNormalization");
        Assert.True(result.CompressionRatio > 3, $"ratio {result.CompressionRatio}");
        double cos = MinCosine(cnn, result.OutputPath, Mnist(cnn, FashionMnistSplit.Test), 64);
        output.WriteLine($"test-split min cosine {cos:F4}");
        // Measured 0.9999.
        Assert.True(cos > 0.999, $"min cosine {cos}");
    }

    [Fact]
    [Trait("Category", "Int8Kernels")] // its numbers come from ONNX Runtime's integer kernels: CI runs it again without VNNI
    public void Int8Speed_OnResNet18_CalibratedOnThreePhotos_HoldsOnThreeOthers()
    {
        var (calibration, eval) = (PhotoFolder(["astronaut.jpg", "chelsea.jpg", "coffee.jpg"]), PhotoFolder(["hubble_deep_field.jpg", "retina.jpg", "rocket.jpg"]));
        try
        {
            var resnet = RealModels.ResNet18;
            var specOptions = new DataSpecOptions { ModelPath = resnet, PreprocessModelPath = RealModels.ResNetPreprocess };
            var inputs = ModelRunner.Load(resnet).Inputs;
            var result = Run(resnet, "int8-speed", DataSpec.Parse($"images:{calibration}?preset=resnet18-mlnet", inputs, specOptions), "resnet18.int8.onnx");
            Assert.True(result.CompressionRatio > 3.5, $"ratio {result.CompressionRatio}");
            Assert.True(ModelGraph.Load(result.OutputPath).Main.Nodes.Count(n => n.OpType == "QuantizeLinear") >= 20);
            double cos = MinCosine(resnet, result.OutputPath, DataSpec.Parse($"images:{eval}?preset=resnet18-mlnet", inputs, specOptions), 3);
            output.WriteLine($"unseen photos min cosine {cos:F4}");
            // Measured 0.9952 (with VNNI and on an emulated AVX2 CPU alike); the recipe's gate is 0.98.
            Assert.True(cos > 0.993, $"min cosine {cos}");
        }
        finally
        {
            Directory.Delete(calibration, recursive: true);
            Directory.Delete(eval, recursive: true);
        }
    }

    [Fact]
    [Trait("Category", "Int8Kernels")] // its numbers come from ONNX Runtime's integer kernels: CI runs it again without VNNI
    public void DynamicInt8Transformer_OnMiniLm_NeedsNoData_AndHoldsOnSentences()
    {
        var minilm = RealModels.MiniLm;
        var recipe = Shipped("dynamic-int8-transformer");
        Assert.False(recipe.NeedsCalibration);
        using var vocab = File.OpenRead(RealModels.MiniLmVocab);
        var inputs = ModelRunner.Load(minilm).Inputs;
        var sentences = new TextFeed(Path.Combine(RealModels.SamplesDir, "text", "sentences.txt"), vocab, inputs, maxLength: 64);
        // Random token ids would be no test of a sentence encoder: the probes are real sentences.
        var outPath = Path.Combine(RealModels.TempDir("recipe-minilm"), "minilm.int8.onnx");
        var result = RecipeRunner.Run(minilm, recipe, new RecipeRunOptions { OutputPath = outPath, Probes = sentences });
        output.WriteLine($"MiniLM: {result.BytesBefore:N0} -> {result.BytesAfter:N0} bytes, probe min cosine {result.Verification.MinCosine:F4}");
        Assert.True(result.BytesAfter < 0.75 * result.BytesBefore);
        Assert.Equal(36, result.Layers.Count);
        Assert.True(result.Verification.MinCosine >= recipe.MinCosine);
        // The sentence embedding (output 924, mean-pooled) is what users take from MiniLM: it must hold at 0.99.
        var pooled = result.Verification.Outputs.Single(o => o.Name == "924");
        Assert.True(pooled.MinCosine >= 0.99, $"pooled min cosine {pooled.MinCosine}");
    }

    [Fact]
    public void Int4Transformer_OnMiniLm_IsFourTimesSmaller_AndItsSentenceEmbeddingHolds()
    {
        var minilm = RealModels.MiniLm;
        var recipe = Shipped("int4-transformer");
        Assert.False(recipe.NeedsCalibration);
        using var vocab = File.OpenRead(RealModels.MiniLmVocab);
        var sentences = new TextFeed(Path.Combine(RealModels.SamplesDir, "text", "sentences.txt"), vocab, ModelRunner.Load(minilm).Inputs, maxLength: 48);
        var outPath = Path.Combine(RealModels.TempDir("recipe-minilm4"), "minilm.int4.onnx");
        var result = RecipeRunner.Run(minilm, recipe, new RecipeRunOptions { OutputPath = outPath, Probes = sentences });
        var pooled = result.Verification.Outputs.Single(o => o.Name == "924");
        output.WriteLine($"MiniLM int4: {result.BytesBefore:N0} -> {result.BytesAfter:N0} bytes ({result.CompressionRatio:F2}x), probe min cosine " +
                         $"{result.Verification.MinCosine:F4} (all outputs), {pooled.MinCosine:F4} (pooled 924)");
        Assert.True(result.CompressionRatio > 4, $"ratio {result.CompressionRatio}");
        Assert.Contains(ModelGraph.Load(outPath).Main.Nodes, n => n.OpType == "MatMulNBits");
        Assert.True(pooled.MinCosine >= 0.95, $"pooled min cosine {pooled.MinCosine}");
    }

    [Fact]
    public void DeepCompression_OnTheCnn_Prunes90Percent_SharesWeights_AndShrinksSeveralTimes()
    {
        var cnn = RealModels.CnnSample;
        var result = Run(cnn, "deep-compression", Mnist(cnn, FashionMnistSplit.Train), "cnn.deep.onnx");
        // The preparation passes first (whatever PreparationPasses.Default holds), then prune + reconstruct as one pass.
        Assert.Equal(["pruning-reconstruction", "kmeans-clustering", "sparse-storage"], result.Passes.TakeLast(3).Select(p => p.PassName));
        Assert.Contains(result.Passes, p => p.PassName == "fold-batchnorm");
        Assert.True(result.CompressionRatio > 5, $"ratio {result.CompressionRatio}");
        double cos = MinCosine(cnn, result.OutputPath, Mnist(cnn, FashionMnistSplit.Test), 64);
        output.WriteLine($"test-split min cosine {cos:F4}");
        Assert.True(cos > 0.9, $"min cosine {cos}");
    }

    [Fact]
    public void LowRank_OnTheCnn_HalvesTheFactorizedLayers_AndHoldsOnTheTestSplit()
    {
        var cnn = RealModels.CnnSample;
        var result = Run(cnn, "low-rank", Mnist(cnn, FashionMnistSplit.Train), "cnn.lowrank.onnx");
        Assert.True(result.BytesAfter < 0.75 * result.BytesBefore, $"{result.BytesBefore} -> {result.BytesAfter}");
        double cos = MinCosine(cnn, result.OutputPath, Mnist(cnn, FashionMnistSplit.Test), 64);
        output.WriteLine($"test-split min cosine {cos:F4}");
        Assert.True(cos > 0.9, $"min cosine {cos}");
    }

    [Fact]
    public void Int4Storage_OnTheCnn_IsOverSevenTimesSmaller_AndKeepsTheTestAccuracy()
    {
        var cnn = RealModels.CnnSample;
        Assert.False(Shipped("int4-storage").NeedsCalibration);
        // No step reads data: the training rows are only the verification probes.
        var result = Run(cnn, "int4-storage", Mnist(cnn, FashionMnistSplit.Train), "cnn.int4.onnx");
        Assert.Equal(["int4-weight-storage"], result.Passes.Select(p => p.PassName));
        Assert.True(result.CompressionRatio > 7, $"ratio {result.CompressionRatio}");
        // Accuracy against the labels of the bundled test split (1000 rows), the float model on the same rows as reference.
        var eval = ModelComparer.Compare(cnn, result.OutputPath, Mnist(cnn, FashionMnistSplit.Test),
            new EvalOptions { BatchSize = 250, WarmupRuns = 0, MinLatencySamples = 1 }).Outputs[0];
        double before = eval.BaselineAccuracy!.Value, after = eval.CandidateAccuracy!.Value;
        output.WriteLine($"test-split accuracy {before:P2} -> {after:P2} over {eval.Rows} rows, min cosine {eval.MinCosine:F4}");
        Assert.Equal(1000, eval.Rows);
        Assert.True(Math.Abs(after - before) <= 0.015, $"accuracy {before:P2} -> {after:P2}");
    }

    [Fact]
    public void PruneStructured_OnTheCnn_RemovesAQuarterOfTheChannels_AndTheWrittenModelRuns()
    {
        var cnn = RealModels.CnnSample;
        var recipe = Recipe.Parse("""{"name":"structured","steps":[{"step":"prune-structured","fraction":0.25,"criterion":"l1"}]}""");
        Assert.False(recipe.NeedsCalibration);
        var outPath = Path.Combine(RealModels.TempDir("recipe-structured"), "cnn.structured.onnx");
        // Channels removed without a re-fit move the logits more than the default gate allows; the test split judges the result.
        var result = RecipeRunner.Run(cnn, recipe, new RecipeRunOptions { OutputPath = outPath, Probes = Mnist(cnn, FashionMnistSplit.Train), MinCosine = 0.9 });
        long before = FloatParameters(cnn), after = FloatParameters(outPath);
        output.WriteLine($"structured 25% l1: {before:N0} -> {after:N0} float parameters, probe min cosine {result.Verification.MinCosine:F4}; " +
                         string.Join("; ", result.Passes.Single().Changes));
        Assert.Equal("structured-pruning", result.Passes.Single().PassName);
        Assert.True(after < 0.85 * before, $"{before} -> {after} parameters");

        using var runner = ModelRunner.Load(outPath);
        var batch = Mnist(cnn, FashionMnistSplit.Test).Batches(100, 100).Single();
        var logits = runner.Run(batch).Outputs[0];
        Assert.Equal(100, logits.Rows);
        int correct = 0;
        for (int r = 0; r < logits.Rows; r++)
        {
            var row = logits.Row(r);
            Assert.Equal(10, row.Length);
            if (row.IndexOf(System.Numerics.Tensors.TensorPrimitives.Max(row)) == batch.Labels![r]) correct++;
        }
        output.WriteLine($"test-split accuracy of the pruned model on 100 rows: {correct}%");
        Assert.True(correct >= 80, $"{correct} of 100 correct");
    }

    private static long FloatParameters(string path) =>
        ModelGraph.Load(path).Constants.Where(c => c.DataType == OnnxDataType.Float).Sum(c => c.ElementCount);

    private static string PhotoFolder(string[] files)
    {
        var dir = Path.Combine(Path.GetTempPath(), "mlnetcompress-recipe-photos", $"{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        foreach (var f in files) File.Copy(Path.Combine(RealModels.SamplesDir, "images", f), Path.Combine(dir, f));
        return dir;
    }
}
