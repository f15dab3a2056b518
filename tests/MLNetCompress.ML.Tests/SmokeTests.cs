using Microsoft.ML;

namespace MLNetCompress.ML.Tests;

public class SmokeTests
{
    [Fact]
    public void MlContextLoadsAndTrainsLightGbm()
    {
        // Guards the native LightGBM library being restored on a clean machine.
        var ml = new MLContext(seed: 1);
        var rows = Enumerable.Range(0, 200).Select(i => new Row { Features = [i % 2, (i / 2) % 2, i * 0.01f], Label = (uint)(i % 2) + 1 }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var model = ml.MulticlassClassification.Trainers.LightGbm(new Microsoft.ML.Trainers.LightGbm.LightGbmMulticlassTrainer.Options { NumberOfIterations = 5, MinimumExampleCountPerLeaf = 2 })
            .Fit(data);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(data));
        Assert.True(metrics.MicroAccuracy > 0.99, $"accuracy {metrics.MicroAccuracy}");
    }

    private sealed class Row
    {
        [Microsoft.ML.Data.VectorType(3)] public float[] Features { get; set; } = [];
        [Microsoft.ML.Data.KeyType(2)] public uint Label { get; set; }
    }
}
