using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.LowRank;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.LowRank;

public class ShrinkageAndTuckerTests
{
    [Fact]
    public void ShrinkIsTheOutputCovarianceOfTheShrunkInputCovariance()
    {
        const int outDim = 6, inDim = 10, samples = 40;
        const double lambda = 0.3;
        var w = TestTensors.RandomValues(outDim * inDim, 5).Select(v => (double)v).ToArray();
        // Σₓ from correlated samples x = A·g, so that it is far from isotropic.
        var a = TestTensors.RandomValues(inDim * 3, 6);
        var g = TestTensors.RandomValues(samples * 3, 7);
        var sigma = new double[inDim * inDim];
        for (int s = 0; s < samples; s++)
        {
            var x = new double[inDim];
            for (int i = 0; i < inDim; i++)
                for (int k = 0; k < 3; k++) x[i] += a[i * 3 + k] * g[s * 3 + k];
            for (int i = 0; i < inDim; i++)
                for (int j = 0; j < inDim; j++) sigma[i * inDim + j] += x[i] * x[j] / samples;
        }
        var cov = WSWt(w, sigma, outDim, inDim);
        // Independent: μ from the traces, Σₓ' = (1−λ)·Σₓ + λ·μ·I, then W·Σₓ'·Wᵀ by plain loops.
        double traceC = 0, traceG = 0;
        for (int o = 0; o < outDim; o++)
        {
            traceC += cov[o * outDim + o];
            for (int i = 0; i < inDim; i++) traceG += w[o * inDim + i] * w[o * inDim + i];
        }
        double mu = traceC / traceG;
        var shrunk = new double[inDim * inDim];
        for (int i = 0; i < inDim; i++)
            for (int j = 0; j < inDim; j++) shrunk[i * inDim + j] = (1 - lambda) * sigma[i * inDim + j] + (i == j ? lambda * mu : 0);
        var expected = WSWt(w, shrunk, outDim, inDim);

        LayerFactorizer.Shrink(cov, w, outDim, inDim, lambda);
        for (int i = 0; i < cov.Length; i++) Assert.Equal(expected[i], cov[i], 1e-9);
    }

    [Fact]
    public void FullShrinkageGivesThePlainSplitsWeight()
    {
        var graph = TestModels.Mlp(inFeatures: 32, hidden: 48, outFeatures: 40, seed: 3).ToGraph();
        using var runner = ModelRunner.Load(graph.ToBytes());
        var feed = new RandomFeed(runner.Inputs, rows: 64);
        var plain = new LowRankOptions { RankRatio = 0.25, MinElements = 0 };
        var plainPlan = new LowRankPass(plain).Preview(graph.Clone());
        var awarePlan = new LowRankPass(plain with { Calibration = feed, CovarianceShrinkage = 1, LayersPerStage = 4 }).Preview(graph.Clone());
        var rawPlan = new LowRankPass(plain with { Calibration = feed, LayersPerStage = 4 }).Preview(graph.Clone());
        // λ = 1: the projector is the weight's own top singular subspace, so the product of the factors is the plain
        // truncated SVD (the factors themselves differ by a rotation); λ = 0 (data-aware) differs from it.
        Assert.Equal(plainPlan.Layers[0].Factorization.RelativeError, awarePlan.Layers[0].Factorization.RelativeError, 1e-5);
        Assert.True(rawPlan.Layers[0].Factorization.RelativeError > plainPlan.Layers[0].Factorization.RelativeError + 1e-4);
    }

    [Fact]
    public void DataAwareTuckerIsExactAtFullRankAndFindsTheInputSubspace()
    {
        // The 3×3 conv reads 8 channels that span only 3 dimensions (a 1×1 conv from 3), and its 12 outputs span 4
        // (W = Uo·V, Uo 12×4): a data-aware Tucker-2 at ranks 3/4 loses nothing, while the weight-only HOSVD does not know the
        // input subspace.
        var uo = TestTensors.RandomValues(12 * 4, 31);
        var v = TestTensors.RandomValues(4 * 8 * 9, 32);
        var w = new float[12 * 8 * 9];
        for (int o = 0; o < 12; o++)
            for (int k = 0; k < 4; k++)
                for (int i = 0; i < 8 * 9; i++) w[o * 72 + i] += uo[o * 4 + k] * v[k * 72 + i];
        var model = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, "batch", 3, 10, 10)
            .Initializer(TestTensors.Random("M", [8, 3, 1, 1], 30))
            .Initializer(TestTensors.Float("W", [12, 8, 3, 3], w))
            .Initializer(TestTensors.Random("B", [12], 22))
            .Node("Conv", ["x", "M"], ["m"], "mix")
            .Node("Conv", ["m", "W", "B"], ["y"], "conv", "", Attr.Ints("pads", 1, 1, 1, 1))
            .OutputUnranked("y", OnnxDataType.Float);
        var bytes = model.ToBytes();
        using var runner = ModelRunner.Load(bytes);
        var feed = new RandomFeed(runner.Inputs, rows: 16);
        var x = LowRankPassTests.Inputs("x", [4, 3, 10, 10], 9);
        var reference = LowRankPassTests.Run(bytes, x);
        var baseOptions = new LowRankOptions
        {
            Conv = ConvFactorization.Tucker, Weights = new HashSet<string> { "W" }, MinElements = 0, RequireFewerParameters = false, RankRatio = 1,
        };
        var aware = baseOptions with { Calibration = feed };

        var (full, fullPlan) = Split(bytes, aware);
        Assert.True(fullPlan.Layers.Single().DataAware);
        LowRankPassTests.AssertClose(reference, LowRankPassTests.Run(full, x), 1e-4);

        // r1 = 3 of 8 input channels, r2 = 4 of 12 output channels (Math.Round(4.5) is 4).
        var (awareSplit, awarePlan) = Split(bytes, aware with { RankRatio = 0.375 });
        Assert.Equal([3, 4], awarePlan.Layers.Single().Ranks);
        var (plainSplit, _) = Split(bytes, baseOptions with { RankRatio = 0.375 });
        double awareError = LowRankPassTests.RelativeError(reference, LowRankPassTests.Run(awareSplit, x));
        double plainError = LowRankPassTests.RelativeError(reference, LowRankPassTests.Run(plainSplit, x));
        Assert.True(awareError < 1e-3, $"data-aware Tucker error {awareError:G3}");
        Assert.True(plainError > 0.05, $"plain Tucker error {plainError:G3}");
    }

    private static (byte[] Model, LowRankPlan Plan) Split(byte[] bytes, LowRankOptions options)
    {
        var graph = ModelGraph.FromBytes(bytes);
        var pass = new LowRankPass(options);
        var plan = pass.Preview(graph.Clone());
        PassManager.Run(graph, [pass]);
        return (graph.ToBytes(), plan);
    }

    private static double[] WSWt(double[] w, double[] sigma, int outDim, int inDim)
    {
        var c = new double[outDim * outDim];
        for (int p = 0; p < outDim; p++)
            for (int q = 0; q < outDim; q++)
            {
                double sum = 0;
                for (int i = 0; i < inDim; i++)
                    for (int j = 0; j < inDim; j++) sum += w[p * inDim + i] * sigma[i * inDim + j] * w[q * inDim + j];
                c[p * outDim + q] = sum;
            }
        return c;
    }
}
