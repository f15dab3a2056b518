using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Onnx;
using MLNetCompress.Data;
using MLNetCompress.Recipes;
using MLNetCompress.Testing;
using Xunit.Abstractions;

namespace MLNetCompress.ML.Tests.Compress;

/// <summary>The estimator on the Fashion-MNIST CNN: calibrated on training rows, judged on test rows.</summary>
public class CompressEstimatorTests(ITestOutputHelper output)
{
    private static Recipe Shipped(string name) => Recipe.Load(Path.Combine(RealModels.SamplesDir, "recipes", name + ".json"));

    [Fact]
    public void Fit_ReturnsMLNetsOnnxTransformer_OverASmallerModel_WhoseOutputsMatchTheOriginal_AndSurviveSaveLoad()
    {
        var ml = new MLContext(seed: 1);
        var train = MnistRows.Load(ml, FashionMnistSplit.Train, 64);
        var test = MnistRows.Load(ml, FashionMnistSplit.Test, 100);
        var recipe = Shipped("int8-speed");
        var progress = new List<string>();
        var estimator = ml.Transforms.Compress(new MLNetCompress.ML.Compress.CompressEstimatorOptions
        {
            ModelFile = RealModels.CnnSample,
            Recipe = recipe,
            OutputColumnNames = ["logits"],
            InputColumnNames = ["input"],
            Progress = new SyncProgress<MLNetCompress.Compression.CompressionProgress>(p => progress.Add(p.Step)),
        });
        OnnxTransformer compressed = estimator.Fit(train);

        Assert.NotNull(estimator.CompressedModel);
        Assert.NotNull(estimator.Result);
        Assert.True(estimator.CompressedModel!.Length * 3 < new FileInfo(RealModels.CnnSample).Length);
        Assert.Equal(estimator.Result!.BytesAfter, estimator.CompressedModel.Length);
        Assert.Contains(progress, p => p.StartsWith("qdq-quantization", StringComparison.Ordinal));
        var report = estimator.Report!;
        Assert.Equal(estimator.Result.BytesAfter, report.BytesAfter);
        Assert.NotEmpty(report.Layers);

        // Independent reference: ML.NET's own ApplyOnnxModel over the original file, on rows calibration never saw.
        var original = ml.Transforms.ApplyOnnxModel(["logits"], ["input"], RealModels.CnnSample).Fit(test);
        var a = MnistRows.Column(original.Transform(test), "logits");
        var b = MnistRows.Column(compressed.Transform(test), "logits");
        double min = a.Zip(b, (x, y) => MnistRows.Cosine(x, y)).Min();
        int agree = a.Zip(b, (x, y) => Array.IndexOf(x, x.Max()) == Array.IndexOf(y, y.Max()) ? 1 : 0).Sum();
        output.WriteLine($"{estimator.Result.BytesBefore:N0} -> {estimator.Result.BytesAfter:N0} bytes; test rows: min cosine {min:F4}, top-1 agreement {agree}/100");
        Assert.True(min >= recipe.MinCosine, $"min cosine {min}");
        Assert.True(agree >= 95, $"top-1 agreement {agree}");

        // Append chains and Save/Load work as with any OnnxTransformer.
        var chain = ml.Transforms.CopyColumns("input", "input").Append(estimator);
        var dir = RealModels.TempDir("compress-estimator");
        var path = Path.Combine(dir, "model.zip");
        ml.Model.Save(compressed, train.Schema, path);
        var loaded = ml.Model.Load(path, out _);
        var c = MnistRows.Column(loaded.Transform(test), "logits");
        Assert.Equal(b, c);
        Assert.NotNull(chain);
    }

    [Fact]
    public void GpuRequestedWithFallback_FitsAndTransformsOnWhateverDeviceIsThere()
    {
        // On a CPU-only machine (the CPU runtime package, or no CUDA device) both the calibration sessions and the
        // returned OnnxTransformer must fall back to the CPU instead of failing; with -p:UseGpu=true on a CUDA
        // machine the same test runs on the GPU. Either way the outputs match ML.NET's ApplyOnnxModel on the CPU.
        var ml = new MLContext(seed: 1);
        var rows = MnistRows.Load(ml, FashionMnistSplit.Test, 32);
        var recipe = Recipe.Parse("""{"name":"k256","steps":[{"step":"cluster","clusters":256}],"minCosine":0.99}""");
        var estimator = ml.Transforms.Compress(new MLNetCompress.ML.Compress.CompressEstimatorOptions
        {
            ModelFile = RealModels.CnnSample,
            Recipe = recipe,
            OutputColumnNames = ["logits"],
            InputColumnNames = ["input"],
            GpuDeviceId = 0,
            FallbackToCpu = true,
        });
        var transformer = estimator.Fit(rows);
        var original = ml.Transforms.ApplyOnnxModel(["logits"], ["input"], RealModels.CnnSample).Fit(rows);
        var a = MnistRows.Column(original.Transform(rows), "logits");
        var b = MnistRows.Column(transformer.Transform(rows), "logits");
        Assert.Equal(32, b.Length);
        Assert.True(a.Zip(b, (x, y) => MnistRows.Cosine(x, y)).Min() >= 0.99);
    }

    [Fact]
    public void StreamOverload_RecipeWithoutCalibration_StillVerifiesOnTheFitData()
    {
        var ml = new MLContext(seed: 1);
        var rows = MnistRows.Load(ml, FashionMnistSplit.Test, 16);
        var recipe = Recipe.Parse("""{"name":"k16","steps":[{"step":"cluster","clusters":16}],"minCosine":0.98}""");
        using var stream = File.OpenRead(RealModels.MlpSample);
        var estimator = ml.Transforms.Compress(stream, recipe, ["logits"], ["input"]);
        var transformer = estimator.Fit(rows);
        Assert.Equal(8, estimator.Result!.Verification.ProbeRows);
        Assert.True(estimator.Result.Verification.MinCosine >= 0.98);
        Assert.Equal(16, MnistRows.Column(transformer.Transform(rows), "logits").Length);
    }

    private sealed class Wrong
    {
        [VectorType(784)] public double[] input { get; set; } = [];
    }

    [Fact]
    public void SchemaMismatch_ThrowsArgumentOutOfRange_NamingTheColumnAndBothTypes_BeforeAnythingRuns()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { new Wrong { input = new double[784] } });
        var estimator = ml.Transforms.Compress(RealModels.CnnSample, Shipped("int8-speed"), ["logits"], ["input"]);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.Fit(data));
        output.WriteLine(e.Message);
        Assert.Contains("input", e.Message, StringComparison.Ordinal);
        Assert.Contains("Double", e.Message, StringComparison.Ordinal);
        Assert.Contains("Single", e.Message, StringComparison.Ordinal);
        Assert.Null(estimator.Result);
        Assert.Throws<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(SchemaShapeOf(data)));
    }

    [Fact]
    public void ARecipeThatNeedsMoreThanTheDataGives_FailsWithItsOneLineError()
    {
        var ml = new MLContext(seed: 1);
        var rows = MnistRows.Load(ml, FashionMnistSplit.Test, 16);
        var recipe = Recipe.Parse("""{"steps":[{"step":"cluster","clusters":2}],"minCosine":0.999}""");
        var estimator = ml.Transforms.Compress(RealModels.MlpSample, recipe, ["logits"], ["input"]);
        var e = Assert.Throws<MLNetCompress.Compression.CompressionException>(() => estimator.Fit(rows));
        Assert.StartsWith("verification failed, nothing was written: output 'logits': min cosine", e.Message, StringComparison.Ordinal);
        Assert.Null(estimator.CompressedModel);
    }

    /// <summary>The schema shape of a data view (SchemaShape.Create is internal to ML.NET).</summary>
    private static SchemaShape SchemaShapeOf(IDataView data) =>
        (SchemaShape)typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic,
            [typeof(DataViewSchema)])!.Invoke(null, [data.Schema])!;

    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
