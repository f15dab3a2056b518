using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.LowRank;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.LowRank;

public class DataAwareLowRankTests
{
    [Fact]
    public void DataAwareBeatsPlainSvdAtTheSameRankOnTheCnnSample()
    {
        string model = RealModels.CnnSample;
        using var original = ModelRunner.Load(model);
        var calibration = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:train", original.Inputs);
        var test = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:test", original.Inputs);

        // At very low ranks (6 of conv2's 64) the output-optimal pre-ReLU factors can lose after the ReLU; 0.3 is a usable rank.
        var plain = new LowRankOptions { RankRatio = 0.3 };
        var aware = plain with { Calibration = calibration, CalibrationSettings = new CalibrationOptions { MaxRows = 256, BatchSize = 64 }, LayersPerStage = 1 };
        var (plainError, plainAcc, plainPlan) = Evaluate(model, plain, original, test);
        var (awareError, awareAcc, awarePlan) = Evaluate(model, aware, original, test);

        // conv2 (64×288) and fc1 (256×3136) are split at the same ranks both ways.
        Assert.Equal(plainPlan.Layers.Select(l => l.Ranks[0]), awarePlan.Layers.Select(l => l.Ranks[0]));
        Assert.Equal(2, awarePlan.Layers.Count);
        Assert.All(awarePlan.Layers, l => Assert.True(l.DataAware));
        Assert.True(awareError < 0.9 * plainError, $"data-aware logit error {awareError:G3}, plain {plainError:G3}");
        // 500 test images: accuracy moves by single images, so only a collapse would show.
        Assert.True(awareAcc >= plainAcc - 0.01, $"data-aware accuracy {awareAcc:P1}, plain {plainAcc:P1}");
    }

    [Fact]
    public void CompensationChangesNothingWhereNothingUpstreamChanged()
    {
        var graph = TestModels.Mlp(inFeatures: 32, hidden: 48, outFeatures: 40, seed: 3).ToGraph();
        using var runner = ModelRunner.Load(graph.ToBytes());
        var feed = new RandomFeed(runner.Inputs, rows: 64);
        var options = new LowRankOptions { RankRatio = 0.25, MinElements = 0, Calibration = feed, LayersPerStage = 1 };
        var off = new LowRankPass(options).Preview(graph);
        var on = new LowRankPass(options with { CompensateUpstream = true }).Preview(graph);
        Assert.Equal(2, on.Layers.Count);
        // The first layer sees the original input: its factors are the same either way.
        var a = off.Layers[0].Factorization.Factors;
        var b = on.Layers[0].Factorization.Factors;
        for (int f = 0; f < 2; f++)
            for (int i = 0; i < a[f].Values.Length; i++) Assert.Equal(a[f].Values[i], b[f].Values[i], 1e-4f);
        // The second sees the split first layer's output: compensation fits it to the original output instead.
        Assert.NotEqual(off.Layers[1].Factorization.Factors[1].Values, on.Layers[1].Factorization.Factors[1].Values);
    }

    private static (double Error, double Accuracy, LowRankPlan Plan) Evaluate(string model, LowRankOptions options, ModelRunner original, IDataFeed test)
    {
        var graph = ModelGraph.Load(model);
        var pass = new LowRankPass(options);
        var plan = pass.Preview(graph.Clone());
        PassManager.Run(graph, [pass]);
        using var candidate = ModelRunner.Load(graph.ToBytes());
        double err = 0, norm = 0;
        int correct = 0, rows = 0;
        foreach (var batch in test.Batches(100, 500))
        {
            var expected = original.Run(batch).Outputs[0].Data.ToArray();
            var actual = candidate.Run(batch).Outputs[0];
            for (int i = 0; i < expected.Length; i++)
            {
                err += (expected[i] - actual.Data[i]) * (double)(expected[i] - actual.Data[i]);
                norm += expected[i] * (double)expected[i];
            }
            for (int r = 0; r < batch.RowCount; r++)
            {
                var row = actual.Row(r);
                int best = 0;
                for (int k = 1; k < row.Length; k++) if (row[k] > row[best]) best = k;
                if (best == batch.Labels![r]) correct++;
            }
            rows += batch.RowCount;
        }
        return (Math.Sqrt(err / norm), (double)correct / rows, plan);
    }
}
