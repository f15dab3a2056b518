using MLNetCompress.ML.Distillation;

namespace MLNetCompress.ML.Tests.Distillation.SoftLabels;

public class SoftLabelMathTests
{
    // The hand formula in double, written another way: p_i = 1 / Σ_j exp((z_j − z_i) / T).
    private static double[] Reference(float[] z, double t) =>
        z.Select(zi => 1.0 / z.Sum(zj => Math.Exp((zj - (double)zi) / t))).ToArray();

    private static void Near(double[] expected, float[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"[{i}] expected {expected[i]}, got {actual[i]}");
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(2.0)]
    [InlineData(0.25)]
    public void SoftmaxMatchesTheFormula(double t)
    {
        float[] z = [1.5f, -0.3f, 2.2f, 0f, -4f, 3.1f, 0.7f];
        var p = new float[z.Length];
        SoftLabelMath.Softmax(z, t, p);
        Near(Reference(z, t), p, 1e-6);
        Assert.Equal(1.0, p.Sum(x => (double)x), 5);
    }

    [Fact]
    public void HugeLogitsDoNotOverflow()
    {
        // exp(1e4) is +∞ even in double: the naive formula gives NaN here.
        float[] z = [10000f, 10001f, 10002f, -10000f];
        var p = new float[z.Length];
        SoftLabelMath.Softmax(z, 1.0, p);
        Assert.All(p, x => Assert.True(float.IsFinite(x)));
        Near(Reference(z, 1.0), p, 1e-6);
        Assert.True(double.IsNaN(Math.Exp(10002.0) / z.Sum(x => Math.Exp(x))), "the naive formula overflows");

        float[] tiny = [-30000f, -30001f];
        SoftLabelMath.Softmax(tiny, 1.0, p.AsSpan(0, 2));
        Near(Reference(tiny, 1.0), p[..2], 1e-6);
    }

    [Fact]
    public void InfiniteAndNaNLogits()
    {
        var p = new float[4];
        SoftLabelMath.Softmax([float.PositiveInfinity, 3f, float.PositiveInfinity, float.NegativeInfinity], 1.0, p);
        Assert.Equal([0.5f, 0f, 0.5f, 0f], p);
        SoftLabelMath.Softmax([1f, float.NegativeInfinity, 1f, 1f], 1.0, p);
        Assert.Equal(0f, p[1]);
        Assert.Equal(1f / 3, p[0], 6);
        Assert.Throws<ArgumentException>(() => SoftLabelMath.Softmax([1f, float.NaN], 1.0, new float[2]));
        Assert.Throws<ArgumentException>(() => SoftLabelMath.Softmax([float.NegativeInfinity, float.NegativeInfinity], 1.0, new float[2]));
        Assert.Throws<ArgumentOutOfRangeException>(() => SoftLabelMath.Softmax([1f, 2f], 0.0, new float[2]));
    }

    [Fact]
    public void TemperatureFlattensTowardUniform()
    {
        float[] z = [8f, -3f, 0.5f, 2f, 5f];
        var p1 = new float[5];
        var p5 = new float[5];
        var pHuge = new float[5];
        SoftLabelMath.Softmax(z, 1.0, p1);
        SoftLabelMath.Softmax(z, 5.0, p5);
        SoftLabelMath.Softmax(z, 1e7, pHuge);
        Assert.All(pHuge, x => Assert.Equal(0.2, x, 5));
        // Entropy grows with T; the order of the classes is kept.
        static double Entropy(float[] p) => -p.Sum(x => x > 0 ? x * Math.Log(x) : 0);
        Assert.True(Entropy(p1) < Entropy(p5) && Entropy(p5) < Entropy(pHuge));
        Assert.Equal(Enumerable.Range(0, 5).OrderBy(i => -p1[i]), Enumerable.Range(0, 5).OrderBy(i => -p5[i]));
        // T = 1 is the plain softmax.
        Near(z.Select(x => Math.Exp(x) / z.Sum(y => Math.Exp(y))).ToArray(), p1, 1e-6);
    }

    [Fact]
    public void LogProbabilityInputGivesTheSameDistribution()
    {
        float[] z = [0.2f, 4f, -1f, 2.5f];
        var logSumExp = Math.Log(z.Sum(x => Math.Exp(x)));
        var logP = z.Select(x => (float)(x - logSumExp)).ToArray();
        foreach (var t in new[] { 1.0, 3.0 })
        {
            var a = new float[4];
            var b = new float[4];
            SoftLabelMath.Softmax(z, t, a);
            SoftLabelMath.Softmax(logP, t, b);
            Near(a.Select(x => (double)x).ToArray(), b, 1e-6);
        }
        var log = new float[4];
        SoftLabelMath.LogSoftmax(z, 2.0, log, new float[4]);
        Near(Reference(z, 2.0).Select(x => Math.Log(x)).ToArray(), log, 1e-5);
    }

    [Theory]
    [InlineData(SoftLabelCombine.Arithmetic, 1.0)]
    [InlineData(SoftLabelCombine.Geometric, 1.0)]
    [InlineData(SoftLabelCombine.Arithmetic, 3.0)]
    [InlineData(SoftLabelCombine.Geometric, 3.0)]
    public void EnsemblesMatchHandComputation(SoftLabelCombine combine, double t)
    {
        const int classes = 4;
        // Two rows, three teachers.
        float[][] teachers =
        [
            [1f, 2f, 3f, 0f, /* row 2 */ 5f, -1f, 0f, 0f],
            [3f, 0.5f, 1f, 1f, /* row 2 */ 0f, 0f, 2f, 1f],
            [-2f, 4f, 0f, 1f, /* row 2 */ 100f, 99f, 0f, -50f],
        ];
        var acc = new float[2 * classes];
        var scratch = new float[2 * classes];
        foreach (var z in teachers) SoftLabelMath.AccumulateTeacher(z, classes, t, combine, acc, scratch);
        SoftLabelMath.FinishEnsemble(acc, classes, teachers.Length, combine);

        for (var row = 0; row < 2; row++)
        {
            var ps = teachers.Select(z => Reference(z.Skip(row * classes).Take(classes).ToArray(), t)).ToArray();
            double[] expected;
            if (combine == SoftLabelCombine.Arithmetic)
            {
                expected = Enumerable.Range(0, classes).Select(c => ps.Average(p => p[c])).ToArray();
            }
            else
            {
                var g = Enumerable.Range(0, classes).Select(c => Math.Pow(ps.Aggregate(1.0, (m, p) => m * p[c]), 1.0 / ps.Length)).ToArray();
                expected = g.Select(x => x / g.Sum()).ToArray();
            }
            Near(expected, acc.Skip(row * classes).Take(classes).ToArray(), 2e-6);
        }
    }

    [Fact]
    public void TopKTakesTheLargestWithLowerClassFirstOnTies()
    {
        float[] p = [0.1f, 0.3f, 0.05f, 0.3f, 0.25f];
        var idx = new int[3];
        var val = new float[3];
        SoftLabelMath.TopK(p, idx, val);
        Assert.Equal([1, 3, 4], idx);
        Assert.Equal([0.3f, 0.3f, 0.25f], val);
        var all = new int[5];
        SoftLabelMath.TopK(p, all, new float[5]);
        Assert.Equal([1, 3, 4, 0, 2], all);
        var dense = new float[5];
        SoftLabelMath.Densify(all, p.OrderByDescending(x => x).ToArray(), dense);
        Assert.Equal(p, dense);
        Assert.Throws<ArgumentOutOfRangeException>(() => SoftLabelMath.TopK(p, new int[6], new float[6]));
    }
}
