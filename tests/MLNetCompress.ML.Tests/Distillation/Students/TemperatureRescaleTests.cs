using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetCompress.Testing;
using MLNetCompress.ML.Distillation;

namespace MLNetCompress.ML.Tests.Distillation.Students;

public class TemperatureRescaleTests
{
    private sealed class Scores
    {
        [VectorType(3)] public float[] Score { get; set; } = [];
    }

    [Fact]
    public void Apply_GivesTheHandComputedVector()
    {
        // [0.5, 0.3, 0.2] at T = 2: squares [0.25, 0.09, 0.04], sum 0.38.
        var result = new float[3];
        TemperatureRescale.Apply([0.5f, 0.3f, 0.2f], 2, result);
        Assert.Equal(0.25 / 0.38, result[0], 6);
        Assert.Equal(0.09 / 0.38, result[1], 6);
        Assert.Equal(0.04 / 0.38, result[2], 6);
    }

    [Fact]
    public void Apply_IsSoftmaxOfScaledLogits()
    {
        // softmax(u) rescaled at T is softmax(T·u): checked against the logits directly.
        float[] u = [1.5f, -0.25f, 0.75f, -2f];
        const double t = 3.5;
        var result = new float[u.Length];
        TemperatureRescale.Apply(SoftLabelRows.Softmax(u, 1), t, result);
        var expected = SoftLabelRows.Softmax(u, 1 / t);
        for (var i = 0; i < u.Length; i++) Assert.Equal(expected[i], result[i], 6);
    }

    [Theory]
    [InlineData(2.0)]
    [InlineData(0.5)]
    [InlineData(10.0)]
    public void Transform_MatchesApply_AndSurvivesSaveLoad(double temperature)
    {
        var ml = new MLContext(1);
        float[][] vectors = [[0.5f, 0.3f, 0.2f], [0.98f, 0.0199f, 0.0001f], [0f, 0.5f, 0.5f]];
        var data = ml.Data.LoadFromEnumerable(vectors.Select(v => new Scores { Score = v }).ToList());
        var model = TemperatureRescale.Estimator(ml, temperature)!.Fit(data);
        var path = Path.Combine(RealModels.TempDir("rescale"), $"rescale-{temperature}.zip");
        ml.Model.Save(model, data.Schema, path);
        var loaded = ml.Model.Load(path, out _);
        foreach (var m in new[] { model, loaded })
        {
            var got = ml.Data.CreateEnumerable<Scores>(m.Transform(data), reuseRowObject: false).ToList();
            for (var r = 0; r < vectors.Length; r++)
            {
                var expected = new float[3];
                TemperatureRescale.Apply(vectors[r], temperature, expected);
                for (var c = 0; c < 3; c++) Assert.Equal(expected[c], got[r].Score[c], 5);
            }
        }
    }

    [Fact]
    public void TemperatureOne_NeedsNoTransform() => Assert.Null(TemperatureRescale.Estimator(new MLContext(1), 1));
}
