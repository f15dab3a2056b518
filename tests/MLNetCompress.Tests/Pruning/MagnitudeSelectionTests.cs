using MLNetCompress.Pruning;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.Pruning;

public class MagnitudeSelectionTests
{
    [Fact]
    public void KthSmallestMagnitude_OverSeveralTensors_EqualsTheSortedValue()
    {
        // Negative values, exact zeros, −0 and repeated magnitudes across the tensors.
        var a = TestTensors.RandomValues(5000, 1);
        var b = TestTensors.RandomValues(3000, 2);
        for (int i = 0; i < 300; i++) { a[i * 7] = 0; b[i * 5] = -a[i * 11]; }
        b[17] = -0f;
        var sorted = a.Concat(b).Select(MathF.Abs).Order().ToArray();
        foreach (long k in new long[] { 1, 2, 299, 300, 301, 600, 4000, 7999, 8000 })
        {
            float t = MagnitudeSelection.KthSmallestMagnitude([a, b], k, out long below);
            Assert.Equal(sorted[k - 1], t);
            Assert.Equal(sorted.Count(v => v < t), below);
        }
    }

    [Fact]
    public void ZeroBelow_ZeroesExactlyKValues_TiesInIndexOrder()
    {
        float[] w = [0.5f, -0.2f, 0.2f, 0.1f, -0.2f, 0.9f];
        float t = MagnitudeSelection.KthSmallestMagnitude([w], 3, out long below);
        Assert.Equal(0.2f, t);
        Assert.Equal(1, below);
        Assert.Equal(2, MagnitudeSelection.ZeroBelow(w, t, 3 - below));
        Assert.Equal([0.5f, 0f, 0f, 0f, -0.2f, 0.9f], w);
    }

    [Fact]
    public void StandardDeviation_EqualsTheTwoPassDoubleFormula()
    {
        var w = TestTensors.RandomValues(10_001, 3).Select(v => v * 0.05f + 0.01f).ToArray();
        double mean = w.Average(v => (double)v);
        double std = Math.Sqrt(w.Sum(v => (v - mean) * (v - mean)) / w.Length);
        Assert.Equal(std, MagnitudeSelection.StandardDeviation(w), 1e-7);
    }

    [Fact]
    public void ApplyNM_KeepsTheNLargestOfEveryStridedGroup()
    {
        // [outer 3, reduction 8, inner 5]: groups of 4 along the middle axis.
        var w = TestTensors.RandomValues(3 * 8 * 5, 4);
        var original = (float[])w.Clone();
        MagnitudeSelection.ApplyNM(w, 3, 8, 5, 2, 4);
        for (int o = 0; o < 3; o++)
            for (int g = 0; g < 8; g += 4)
                for (int i = 0; i < 5; i++)
                {
                    var idx = Enumerable.Range(0, 4).Select(j => (o * 8 + g + j) * 5 + i).ToArray();
                    var keep = idx.OrderByDescending(x => Math.Abs(original[x])).Take(2).ToHashSet();
                    foreach (int x in idx) Assert.Equal(keep.Contains(x) ? original[x] : 0f, w[x]);
                }
        Assert.Throws<ArgumentException>(() => MagnitudeSelection.ApplyNM(new float[6], 1, 6, 1, 2, 4));
    }
}
