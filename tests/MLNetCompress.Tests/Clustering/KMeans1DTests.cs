using MLNetCompress.Clustering;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.Clustering;

public class KMeans1DTests
{
    /// <summary>Textbook Lloyd: O(nK) assignment by scanning every centroid (ties to the lower one), means, until nothing moves.</summary>
    private static double[] BruteForceLloyd(float[] x, double[] c, int maxIterations)
    {
        c = (double[])c.Clone();
        var assign = new int[x.Length];
        for (int it = 0; it < maxIterations; it++)
        {
            bool changed = it == 0;
            for (int i = 0; i < x.Length; i++)
            {
                int best = 0;
                for (int j = 1; j < c.Length; j++)
                    if (Math.Abs(x[i] - c[j]) < Math.Abs(x[i] - c[best])) best = j;
                if (best != assign[i]) { assign[i] = best; changed = true; }
            }
            if (!changed) break;
            for (int j = 0; j < c.Length; j++)
            {
                var members = x.Where((_, i) => assign[i] == j).ToArray();
                if (members.Length > 0) c[j] = (float)members.Average(v => (double)v); // the codebook is float
            }
        }
        return c.Order().ToArray();
    }

    /// <summary>The optimal 1-D k-means cost by dynamic programming over the sorted values (O(K n²), tiny n only).</summary>
    private static double OptimalSse(float[] x, int k)
    {
        var s = x.Select(v => (double)v).Order().ToArray();
        int n = s.Length;
        double Cost(int i, int j) // s[i..j]
        {
            double mean = 0;
            for (int t = i; t <= j; t++) mean += s[t];
            mean /= j - i + 1;
            double e = 0;
            for (int t = i; t <= j; t++) e += (s[t] - mean) * (s[t] - mean);
            return e;
        }
        var dp = new double[k + 1, n + 1];
        for (int j = 1; j <= n; j++) dp[0, j] = double.PositiveInfinity;
        for (int m = 1; m <= k; m++)
            for (int j = 1; j <= n; j++)
            {
                dp[m, j] = double.PositiveInfinity;
                for (int i = m; i <= j; i++) dp[m, j] = Math.Min(dp[m, j], dp[m - 1, i - 1] + Cost(i - 1, j - 1));
            }
        return dp[k, n];
    }

    private static double Sse(float[] x, float[] c) =>
        x.Sum(v => c.Min(cc => ((double)v - cc) * ((double)v - cc)));

    [Theory]
    [InlineData(KMeansInit.Linear)]
    [InlineData(KMeansInit.Density)]
    public void Centroids_EqualBruteForceLloydFromTheSameStart(KMeansInit init)
    {
        var x = TestTensors.RandomValues(3000, 7).Select(v => v * v * v).ToArray(); // peaked at 0, like weights
        const int k = 8;
        var s = x.Order().ToArray();
        double[] start = init == KMeansInit.Linear
            ? Enumerable.Range(0, k).Select(j => s[0] + (s[^1] - (double)s[0]) * j / (k - 1)).ToArray()
            : Enumerable.Range(0, k).Select(j => (double)s[(int)((j + 0.5) * s.Length / k)]).ToArray();
        var fast = KMeans1D.Fit(x, k, init, maxIterations: 500);
        var reference = BruteForceLloyd(x, start.Select(v => (double)(float)v).ToArray(), 500);
        Assert.True(fast.Converged);
        Assert.Equal(k, fast.Centroids.Length);
        for (int j = 0; j < k; j++) Assert.Equal(reference[j], fast.Centroids[j], 5e-6);
        Assert.Equal(Sse(x, fast.Centroids), fast.SumOfSquaredErrors, 1e-9);
    }

    [Fact]
    public void KMeansPlusPlus_FindsTheOptimumOfSeparatedGroups_AndStaysCloseOnUniformData()
    {
        var rng = new Random(3);
        float[] centers = [-1f, -0.2f, 0.3f, 1.5f];
        var groups = Enumerable.Range(0, 40).Select(i => centers[i % 4] + (float)(rng.NextDouble() - 0.5) * 0.1f).ToArray();
        var fit = KMeans1D.Fit(groups, 4, KMeansInit.KMeansPlusPlus, seed: 1);
        Assert.Equal(OptimalSse(groups, 4), fit.SumOfSquaredErrors, 1e-9);

        var uniform = TestTensors.RandomValues(40, 9);
        double best = Enumerable.Range(0, 5).Min(seed => KMeans1D.Fit(uniform, 5, KMeansInit.KMeansPlusPlus, seed).SumOfSquaredErrors);
        Assert.InRange(best, OptimalSse(uniform, 5) * (1 - 1e-9), OptimalSse(uniform, 5) * 1.1);
    }

    [Fact]
    public void DefaultIterations_RunLloydToConvergence_OnManyClustersOfPeakedData()
    {
        // Peaked, long-tailed like conv weights: with many clusters Lloyd needs hundreds of iterations.
        var x = TestTensors.RandomValues(200_000, 11).Select(v => v * v * v).ToArray();
        var capped = KMeans1D.Fit(x, 128, KMeansInit.KMeansPlusPlus, seed: 2, maxIterations: 20);
        var fit = KMeans1D.Fit(x, 128, KMeansInit.KMeansPlusPlus, seed: 2);
        Assert.False(capped.Converged);
        Assert.True(fit.Converged);
        Assert.True(fit.Iterations > 20);
        Assert.True(fit.SumOfSquaredErrors < capped.SumOfSquaredErrors);
        Assert.Equal(Sse(x, fit.Centroids), fit.SumOfSquaredErrors, fit.SumOfSquaredErrors * 1e-9);
    }

    [Fact]
    public void Assign_GivesEveryValueItsNearestCentroid()
    {
        var x = TestTensors.RandomValues(5000, 2);
        var fit = KMeans1D.Fit(x, 16, KMeansInit.KMeansPlusPlus, seed: 4, maxIterations: 3); // not converged: assignment must still be nearest
        var idx = new byte[x.Length];
        KMeans1D.Assign(x, fit.Centroids, idx);
        for (int i = 0; i < x.Length; i++)
        {
            double d = Math.Abs(x[i] - (double)fit.Centroids[idx[i]]);
            Assert.All(fit.Centroids, c => Assert.True(d <= Math.Abs(x[i] - (double)c), $"value {x[i]} -> {fit.Centroids[idx[i]]}, but {c} is nearer"));
        }
    }

    [Fact]
    public void SameSeed_SameCentroids_AndFewDistinctValues_AreExact()
    {
        var x = TestTensors.RandomValues(20_000, 5);
        Assert.Equal(KMeans1D.Fit(x, 32, seed: 8).Centroids, KMeans1D.Fit(x, 32, seed: 8).Centroids);
        var few = KMeans1D.Fit([0.5f, -1f, 0.5f, 2f, -1f], 4);
        Assert.Equal([-1f, 0.5f, 2f], few.Centroids);
        Assert.Equal(0, few.SumOfSquaredErrors);
        Assert.Throws<ArgumentException>(() => KMeans1D.Fit([1f, float.NaN], 2));
    }
}

public class KMeansRadixSortTests
{
    [Fact]
    public void RadixSort_EqualsArraySort_WithNegativesZerosAndNaN()
    {
        var x = TestTensors.RandomValues(50_000, 12).Select((v, i) => i % 97 == 0 ? 0f : i % 101 == 0 ? -0f : v * MathF.Pow(10, i % 7 - 3)).ToArray();
        x[5] = float.NaN;
        x[6] = float.NegativeInfinity;
        x[7] = float.MaxValue;
        var expected = (float[])x.Clone();
        Array.Sort(expected);
        var actual = KMeans1D.RadixSort(x);
        // −0 and +0 compare equal: compare values, with NaN equal to NaN.
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < x.Length; i++) Assert.True(expected[i].Equals(actual[i]) || expected[i] == actual[i], $"{i}: {expected[i]} vs {actual[i]}");
    }
}
