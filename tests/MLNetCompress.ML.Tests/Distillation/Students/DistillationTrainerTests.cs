using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using Microsoft.ML.Trainers.LightGbm;
using MLNetCompress.Testing;
using MLNetCompress.Data;
using MLNetCompress.ML.Distillation;

namespace MLNetCompress.ML.Tests.Distillation.Students;

public class DistillationTrainerTests
{
    private sealed class HardRow
    {
        [VectorType(4)] public float[] Features { get; set; } = [];

        // 0-based here: LoadFromEnumerable stores a key field's value v as key v + 1.
        [KeyType(3)] public uint Label { get; set; }
    }

    private sealed class Scored
    {
        public float[] Score { get; set; } = [];

        public uint PredictedLabel { get; set; }
    }

    private static List<Scored> Score(MLContext ml, ITransformer model, IDataView data) =>
        ml.Data.CreateEnumerable<Scored>(model.Transform(data), reuseRowObject: false).ToList();

    [Theory]
    [InlineData(StudentTrainer.LbfgsMaximumEntropy)]
    [InlineData(StudentTrainer.LightGbm)]
    public void AlphaOne_IsPlainHardLabelTraining(StudentTrainer trainer)
    {
        // One LightGBM thread: its OpenMP workers spin for a long time on a loaded machine.
        var ml = new MLContext(1);
        var rows = SoftLabelRows.Blobs(300, seed: 3);
        var soft = SoftLabelRows.Load(ml, rows);
        var hard = ml.Data.LoadFromEnumerable(rows.Select(r => new HardRow { Features = r.Features, Label = (uint)r.Label }).ToList());

        IEstimator<ITransformer> plain = trainer == StudentTrainer.LightGbm
            ? ml.MulticlassClassification.Trainers.LightGbm(new LightGbmMulticlassTrainer.Options { UseSoftmax = true, NumberOfIterations = 20, MinimumExampleCountPerLeaf = 5, Seed = 1, NumberOfThreads = 1 })
            : ml.Transforms.NormalizeMinMax("Features").Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(new LbfgsMaximumEntropyMulticlassTrainer.Options()));
        var plainModel = plain.Fit(hard);
        var options = trainer == StudentTrainer.LightGbm
            ? new DistillationOptions { Trainer = trainer, Alpha = 1, MaximumIterations = 20, MinimumExampleCountPerLeaf = 5, Seed = 1, NumberOfThreads = 1 }
            : new DistillationOptions { Trainer = trainer, Alpha = 1 };
        var result = new DistillationTrainer(ml, options).Train(soft);
        Assert.Equal(300, result.Expansion.ExpandedRows);

        var expected = Score(ml, plainModel, hard);
        var got = Score(ml, result.Model, soft);
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].PredictedLabel, got[i].PredictedLabel);
            for (var c = 0; c < 3; c++) Assert.Equal(expected[i].Score[c], got[i].Score[c], 5);
        }
        var accuracy = StudentEvaluation.Accuracy(result.Model, soft);
        Assert.Equal(expected.Zip(rows).Count(p => p.First.PredictedLabel == p.Second.Label + 1), accuracy.Correct);
    }

    [Fact]
    public void StudentAtTemperature_ScoresWithLogitsTimesT()
    {
        // The saved chain's last three steps restore T: its scores are the tempered student's probabilities
        // raised to T and renormalised, i.e. softmax(T·u), computed here from the chain without those steps.
        var ml = new MLContext(1);
        var soft = SoftLabelRows.Load(ml, SoftLabelRows.Blobs(200, seed: 5));
        var model = ml.MulticlassClassification.Trainers.Distill(new DistillationOptions { Temperature = 4 }).Fit(soft);
        var tempered = new TransformerChain<ITransformer>(model.Take(model.Count() - 3).ToArray());
        var atT = Score(ml, tempered, soft);
        var restored = Score(ml, model, soft);
        var expected = new float[3];
        for (var i = 0; i < atT.Count; i++)
        {
            TemperatureRescale.Apply(atT[i].Score, 4, expected);
            for (var c = 0; c < 3; c++) Assert.Equal(expected[c], restored[i].Score[c], 5);
            Assert.Equal(atT[i].PredictedLabel, restored[i].PredictedLabel);
        }
        // Sharper at T = 1 than at T = 4.
        Assert.True(restored.Average(s => s.Score.Max()) > atT.Average(s => s.Score.Max()));
    }

    [Fact]
    public void CnnSoftLabels_GiveASaneStudent_ThatSurvivesSaveLoad()
    {
        // L-BFGS only: LightGBM on 784 features takes over a minute here (it is covered on small data above and
        // end to end in the CLI tests).
        const StudentTrainer trainer = StudentTrainer.LbfgsMaximumEntropy;
        const double alpha = 0.2;
        var ml = new MLContext(1);
        var train = SoftLabelRows.Load(ml, SoftLabelRows.FromCnn(FashionMnistSplit.Train, temperature: 2));
        var test = SoftLabelRows.Load(ml, SoftLabelRows.FromCnn(FashionMnistSplit.Test, temperature: 2));
        var options = new DistillationOptions { Trainer = trainer, Alpha = alpha, Temperature = 2, MaximumIterations = 100, Seed = 7 };
        var result = new DistillationTrainer(ml, options).Train(train);
        Assert.Equal(1000, result.Expansion.SourceRows);
        Assert.Equal(1000, result.Expansion.LabeledRows);
        Assert.Equal(10, result.Expansion.ClassCount);
        Assert.Equal(784, result.Expansion.FeatureCount);
        Assert.InRange(result.Expansion.ExpandedRows, 1001, 10_000);

        var accuracy = StudentEvaluation.Accuracy(result.Model, test);
        Assert.Equal(1000, accuracy.Rows);
        Assert.True(accuracy.Accuracy > 0.7, $"test accuracy {accuracy.Accuracy}");

        var path = Path.Combine(RealModels.TempDir("student"), "student.zip");
        var bytes = result.Save(path);
        Assert.Equal(new FileInfo(path).Length, bytes);
        var loaded = ml.Model.Load(path, out var inputSchema);
        Assert.Equal(784, ((VectorDataViewType)inputSchema["Features"].Type).Size);
        var before = Score(ml, result.Model, test);
        var after = Score(ml, loaded, test);
        for (var i = 0; i < before.Count; i++)
        {
            Assert.Equal(before[i].PredictedLabel, after[i].PredictedLabel);
            Assert.Equal(before[i].Score, after[i].Score);
        }
    }

    [Fact]
    public void Sdca_TrainsOnSoftLabels()
    {
        var ml = new MLContext(1);
        var data = SoftLabelRows.Load(ml, SoftLabelRows.Blobs(300, seed: 9));
        var result = new DistillationTrainer(ml, new DistillationOptions { Trainer = StudentTrainer.SdcaMaximumEntropy, L2Regularization = 1e-3f, Seed = 1 }).Train(data);
        Assert.Equal(900, result.Expansion.ExpandedRows);
        Assert.True(StudentEvaluation.Accuracy(result.Model, data).Accuracy > 0.85);
    }

    [Fact]
    public void Options_AreChecked()
    {
        var ml = new MLContext(1);
        Assert.Throws<ArgumentOutOfRangeException>(() => new DistillationTrainer(ml, new DistillationOptions { Alpha = 1.5 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DistillationTrainer(ml, new DistillationOptions { Temperature = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DistillationTrainer(ml, new DistillationOptions { DropThreshold = 1 }));
        Assert.Throws<ArgumentException>(() => new DistillationTrainer(ml, new DistillationOptions { NumberOfLeaves = 8 }));
        Assert.Throws<ArgumentException>(() => new DistillationTrainer(ml, new DistillationOptions { Trainer = StudentTrainer.LightGbm, L2Regularization = 1 }));
    }
}
