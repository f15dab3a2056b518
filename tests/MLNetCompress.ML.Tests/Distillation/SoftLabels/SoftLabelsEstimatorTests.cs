using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNetCompress.Data;
using MLNetCompress.ML.Distillation;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;

namespace MLNetCompress.ML.Tests.Distillation.SoftLabels;

public class SoftLabelsEstimatorTests
{
    private const int Rows = 64;

    private sealed class Image
    {
        public float[] Pixels { get; set; } = [];
        public int Label { get; set; }
    }

    // The first rows of the bundled Fashion-MNIST subset as an ML.NET view with a 784-float column "Pixels".
    private static IDataView Images(MLContext ml)
    {
        var feed = new FashionMnistFeed(RealModels.FashionMnistSubset, [new ModelInputInfo("x", TensorElementType.Float, [-1, 784])]);
        var batch = feed.Batches(Rows, Rows).Single();
        var pixels = batch.Inputs["x"].FloatData;
        var rows = Enumerable.Range(0, Rows).Select(r => new Image { Pixels = pixels.AsSpan(r * 784, 784).ToArray(), Label = batch.Labels![r] }).ToList();
        var schema = SchemaDefinition.Create(typeof(Image));
        schema[nameof(Image.Pixels)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 784);
        return ml.Data.LoadFromEnumerable(rows, schema);
    }

    // Each teacher run by ONNX Runtime directly, softmax(z / T) in double.
    private static double[][] Direct(string model, double t)
    {
        using var runner = ModelRunner.Load(model);
        var feed = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:test", runner.Inputs);
        var z = runner.Run(feed.Batches(Rows, Rows).Single())["logits"];
        return Enumerable.Range(0, Rows).Select(r =>
        {
            var row = z.Row(r).ToArray();
            var e = row.Select(v => Math.Exp((v - row.Max()) / t)).ToArray();
            return e.Select(v => v / e.Sum()).ToArray();
        }).ToArray();
    }

    private static float[][] Column(IDataView view, string name) =>
        view.GetColumn<VBuffer<float>>(name).Select(v => v.DenseValues().ToArray()).ToArray();

    private static void AssertNear(double[][] expected, float[][] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var r = 0; r < expected.Length; r++)
            for (var c = 0; c < expected[r].Length; c++)
                Assert.True(Math.Abs(expected[r][c] - actual[r][c]) < 2e-6, $"row {r} class {c}: {expected[r][c]} vs {actual[r][c]}");
    }

    [Fact]
    public void CnnEstimatorGivesTheDistributionOfOnnxRuntime()
    {
        var ml = new MLContext(seed: 1);
        var data = Images(ml);
        var estimator = ml.Transforms.SoftLabels(RealModels.CnnSample, temperature: 2.0, inputColumnName: "Pixels");
        Assert.Equal(10, estimator.Classes);
        var output = estimator.Fit(data).Transform(data);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 10), output.Schema[SoftLabelFile.SoftLabelColumn].Type);
        AssertNear(Direct(RealModels.CnnSample, 2.0), Column(output, SoftLabelFile.SoftLabelColumn));
    }

    [Fact]
    public void GpuRequestedWithFallback_RunsOnWhateverDeviceIsThere()
    {
        // On a CPU-only machine ML.NET's own fallback would miss the absent CUDA entry point; the estimator asks
        // ONNX Runtime first. On a CUDA machine built with -p:UseGpu=true the same test runs on the GPU.
        var ml = new MLContext(seed: 1);
        var data = Images(ml);
        var estimator = ml.Transforms.SoftLabels(new SoftLabelsEstimatorOptions
        {
            Teachers = [RealModels.CnnSample], Temperature = 2.0, InputColumnName = "Pixels", GpuDeviceId = 0, FallbackToCpu = true,
        });
        var soft = Column(estimator.Fit(data).Transform(data), SoftLabelFile.SoftLabelColumn);
        var expected = Direct(RealModels.CnnSample, 2.0);
        for (var r = 0; r < Rows; r++)
            for (var c = 0; c < 10; c++)
                Assert.True(Math.Abs(expected[r][c] - soft[r][c]) < 1e-4, $"row {r} class {c}");
    }

    [Fact]
    public void WorksInAnAppendChainAndSurvivesModelSave()
    {
        var ml = new MLContext(seed: 1);
        var data = Images(ml);
        var pipeline = ml.Transforms.CopyColumns("Features", "Pixels")
            .Append(ml.Transforms.SoftLabels(RealModels.CnnSample, temperature: 5.0, outputColumnName: "Teacher"));
        var model = pipeline.Fit(data);
        var expected = Direct(RealModels.CnnSample, 5.0);
        AssertNear(expected, Column(model.Transform(data), "Teacher"));

        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        stream.Position = 0;
        var loaded = ml.Model.Load(stream, out _);
        AssertNear(expected, Column(loaded.Transform(data), "Teacher"));
    }

    [Theory]
    [InlineData(SoftLabelCombine.Arithmetic)]
    [InlineData(SoftLabelCombine.Geometric)]
    public void EnsembleOfCnnAndMlpMatchesHandComputation(SoftLabelCombine combine)
    {
        var ml = new MLContext(seed: 1);
        var data = Images(ml);
        var estimator = ml.Transforms.SoftLabels(new SoftLabelsEstimatorOptions
        {
            Teachers = [RealModels.CnnSample, RealModels.MlpSample],
            InputColumnName = "Pixels",
            Temperature = 3.0,
            Combine = combine,
        });
        var output = estimator.Fit(data).Transform(data);
        Assert.Null(output.Schema.GetColumnOrNull("SoftLabel.teacher0"));
        var cnn = Direct(RealModels.CnnSample, 3.0);
        var mlp = Direct(RealModels.MlpSample, 3.0);
        var expected = cnn.Zip(mlp, (a, b) =>
        {
            if (combine == SoftLabelCombine.Arithmetic) return a.Zip(b, (x, y) => (x + y) / 2).ToArray();
            var g = a.Zip(b, (x, y) => Math.Sqrt(x * y)).ToArray();
            return g.Select(x => x / g.Sum()).ToArray();
        }).ToArray();
        AssertNear(expected, Column(output, SoftLabelFile.SoftLabelColumn));
    }

    [Fact]
    public void GeneratorOverADataViewWritesWhatTheEstimatorAdds()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.Cache(Images(ml));
        var path = Path.Combine(RealModels.TempDir("softlabels-view"), "view.idv");
        var result = SoftLabelGenerator.Generate(data, path, new SoftLabelOptions { Teachers = [RealModels.CnnSample], Temperature = 2.0, TopK = 10 }, inputColumnName: "Pixels");
        Assert.Equal(Rows, result.Info.Rows);
        Assert.False(result.Info.HasLabels);
        var fromFile = Column(SoftLabelFile.Load(ml, path), SoftLabelFile.SoftLabelColumn);
        var fromEstimator = Column(ml.Transforms.SoftLabels(RealModels.CnnSample, 2.0, inputColumnName: "Pixels").Fit(data).Transform(data), SoftLabelFile.SoftLabelColumn);
        AssertNear(fromEstimator.Select(r => r.Select(v => (double)v).ToArray()).ToArray(), fromFile);
    }

    [Fact]
    public void BadTeacherOptionsAreRefusedWhenTheEstimatorIsMade()
    {
        var ml = new MLContext(seed: 1);
        Assert.Throws<FileNotFoundException>(() => ml.Transforms.SoftLabels("no-such-teacher.onnx"));
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.SoftLabels(RealModels.CnnSample, temperature: 0));
        Assert.Contains("no output 'probs'", Assert.Throws<SoftLabelException>(() => ml.Transforms.SoftLabels(RealModels.CnnSample, teacherOutputName: "probs")).Message);
    }
}
