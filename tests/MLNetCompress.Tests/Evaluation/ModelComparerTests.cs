using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.Evaluation;

public class ModelComparerTests
{
    private const int Rows = 50;
    private static readonly float[] X = TestTensors.RandomValues(Rows * EvaluationTestModels.In, 7);
    private static readonly int[] Labels = Enumerable.Range(0, Rows).Select(i => i % 3).ToArray();

    private static readonly EvalOptions Fast = new() { BatchSize = 16, WarmupRuns = 1, MinLatencySamples = 6 };

    [Fact]
    public void ModelAgainstItself_IsIdentical()
    {
        var model = EvaluationTestModels.Mlp();
        var progress = new List<EvalProgress>();
        var report = ModelComparer.Compare(model, model, new ArrayFeed(X, Rows, Labels), Fast, new SyncProgress(progress));

        Assert.Equal(Rows, report.Rows);
        Assert.Equal(16, report.BatchSize);
        var y = Assert.Single(report.Outputs);
        Assert.Equal("y", y.Name);
        Assert.Equal(Rows, y.Rows);
        Assert.Equal(1.0, y.MeanCosine);
        Assert.Equal(1.0, y.MinCosine);
        Assert.Equal(0.0, y.MaxAbsDiff);
        Assert.Equal(1.0, y.Top1Agreement);
        Assert.Equal(y.BaselineAccuracy, y.CandidateAccuracy);
        Assert.Equal(model.Length, report.BaselineBytes);
        Assert.Equal(1.0, report.SizeRatio);
        Assert.Contains(progress, p => p.Phase == "compare" && p.RowsDone == Rows && p.TotalRows == Rows);
    }

    [Fact]
    public void PerturbedCopy_MatchesAnIndependentDoubleReference()
    {
        const float noise = 0.3f;
        var report = ModelComparer.Compare(EvaluationTestModels.Mlp(), EvaluationTestModels.Mlp(noise), new ArrayFeed(X, Rows, Labels),
            Fast with { BaselineBytes = 1000, CandidateBytes = 250 });

        var a = EvaluationTestModels.Reference(X, Rows, 0);
        var b = EvaluationTestModels.Reference(X, Rows, noise);
        const int c = EvaluationTestModels.Out;
        double sumCos = 0, minCos = double.MaxValue, maxAbs = 0, sumAbs = 0;
        int agree = 0, correctA = 0, correctB = 0;
        for (var r = 0; r < Rows; r++)
        {
            double dot = 0, na = 0, nb = 0;
            int ia = 0, ib = 0;
            for (var k = 0; k < c; k++)
            {
                double va = a[r * c + k], vb = b[r * c + k];
                dot += va * vb;
                na += va * va;
                nb += vb * vb;
                maxAbs = Math.Max(maxAbs, Math.Abs(va - vb));
                sumAbs += Math.Abs(va - vb);
                if (va > a[r * c + ia]) ia = k;
                if (vb > b[r * c + ib]) ib = k;
            }
            var cos = dot / Math.Sqrt(na * nb);
            sumCos += cos;
            minCos = Math.Min(minCos, cos);
            if (ia == ib) agree++;
            if (ia == Labels[r]) correctA++;
            if (ib == Labels[r]) correctB++;
        }

        var y = Assert.Single(report.Outputs);
        Assert.Equal(sumCos / Rows, y.MeanCosine, 5);
        Assert.Equal(minCos, y.MinCosine, 5);
        Assert.True(y.MinCosine < 0.999, "the perturbation must show");
        Assert.Equal(maxAbs, y.MaxAbsDiff, 5);
        Assert.Equal(sumAbs / (Rows * c), y.MeanAbsDiff, 5);
        Assert.Equal((double)agree / Rows, y.Top1Agreement);
        Assert.Equal((double)correctA / Rows, y.BaselineAccuracy);
        Assert.Equal((double)correctB / Rows, y.CandidateAccuracy);
        Assert.Equal(0.25, report.SizeRatio);
    }

    [Fact]
    public void Latency_IsMeasuredOnFullBatches_UpToTheMinimumSamples()
    {
        var model = EvaluationTestModels.Mlp();
        var report = ModelComparer.Compare(model, EvaluationTestModels.Mlp(0.1f), new ArrayFeed(X, Rows, Labels), Fast with { MaxRows = 40 });
        Assert.Equal(40, report.Rows);
        Assert.Equal(6, report.LatencySamples); // 2 full batches of 16, topped up to 6 on the first batch
        Assert.True(report.BaselineMedianMs > 0 && report.CandidateMedianMs > 0);
        Assert.True(double.IsFinite(report.LatencyRatio));
        Assert.True(report.PeakWorkingSetBytes > 0);
        Assert.False(report.OnGpu);
    }

    [Fact]
    public void CandidateWithOtherInputs_IsRefused()
    {
        var e = Assert.Throws<InvalidOperationException>(() =>
            ModelComparer.Compare(EvaluationTestModels.Mlp(), EvaluationTestModels.Mlp(inputName: "features"), new ArrayFeed(X, Rows, Labels), Fast));
        Assert.Equal("the candidate has no input 'x'", e.Message);
    }

    [Fact]
    public void BundledMlp_AgainstItselfOnTheFashionSubset()
    {
        var path = RealModels.MlpSample;
        using var runner = MLNetCompress.Runtime.ModelRunner.Load(path);
        var feed = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}", runner.Session);
        var report = ModelComparer.Compare(path, path, feed, new EvalOptions { BatchSize = 100, WarmupRuns = 1, MinLatencySamples = 10 });
        Assert.Equal(1000, report.Rows);
        var logits = report.Outputs.Single(o => o.Name == "logits");
        Assert.Equal(1.0, logits.MinCosine);
        Assert.Equal(1.0, logits.Top1Agreement);
        Assert.InRange(logits.BaselineAccuracy!.Value, 0.7, 1.0);
    }

    // Progress<T> posts to the thread pool; the tests want the reports in order, now.
    private sealed class SyncProgress(List<EvalProgress> sink) : IProgress<EvalProgress>
    {
        public void Report(EvalProgress value) => sink.Add(value);
    }
}
