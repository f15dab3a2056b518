using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetCompress.ML.Distillation;

namespace MLNetCompress.ML.Tests.Distillation.Students;

public class SoftTargetExpansionTests
{
    private sealed class Expanded
    {
        public float[] Features { get; set; } = [];

        public uint Label { get; set; }

        public float Weight { get; set; }
    }

    private static (List<Expanded> Rows, ExpansionReport Report) Expand(IReadOnlyList<SoftLabelRows.Row> rows, DistillationOptions options)
    {
        var ml = new MLContext(1);
        var set = SoftTargetExpansion.Expand(ml, SoftLabelRows.Load(ml, rows), options);
        return (ml.Data.CreateEnumerable<Expanded>(set.Data, reuseRowObject: false).ToList(), set.Report);
    }

    private static SoftLabelRows.Row Row(int label, params float[] soft) =>
        new() { Id = "r", Label = label, Features = [label, 1f], SoftLabel = soft };

    [Fact]
    public void Weights_AreTheMixture_AndSumToOnePerRow()
    {
        // q = α·onehot(y) + (1−α)·p with α = 0.4, by hand:
        // row 0: p = [0.5, 0.3, 0.15, 0.05], y = 1 -> [0.30, 0.58, 0.09, 0.03]
        // row 1: p = [0.1, 0.2, 0.3, 0.4],   y = 3 -> [0.06, 0.12, 0.18, 0.64]
        // row 2: unlabelled, so α = 0       -> p = [0.25, 0.25, 0.25, 0.25]
        var (rows, report) = Expand([Row(1, 0.5f, 0.3f, 0.15f, 0.05f), Row(3, 0.1f, 0.2f, 0.3f, 0.4f), Row(-1, 0.25f, 0.25f, 0.25f, 0.25f)],
            new DistillationOptions { Alpha = 0.4, DropThreshold = 0 });
        double[][] expected = [[0.30, 0.58, 0.09, 0.03], [0.06, 0.12, 0.18, 0.64], [0.25, 0.25, 0.25, 0.25]];
        Assert.Equal(12, rows.Count);
        for (var r = 0; r < 3; r++)
        {
            var group = rows.Skip(r * 4).Take(4).ToList();
            Assert.Equal([1u, 2u, 3u, 4u], group.Select(g => g.Label));
            for (var c = 0; c < 4; c++) Assert.Equal(expected[r][c], group[c].Weight, 6);
            Assert.Equal(1.0, group.Sum(g => (double)g.Weight), 6);
        }
        Assert.Equal(new ExpansionReport(4, 2, 3, 2, 12, 0, 0, 0, 0), report);
    }

    [Fact]
    public void Features_AreCopiedUnchanged()
    {
        var (rows, _) = Expand([Row(2, 0.2f, 0.3f, 0.5f)], new DistillationOptions { DropThreshold = 0 });
        Assert.All(rows, r => Assert.Equal([2f, 1f], r.Features));
    }

    [Fact]
    public void DropThreshold_DropsSmallTargets_AndRenormalises()
    {
        // p = [0.7, 0.25, 0.04, 0.01], α = 0, threshold 0.05: 0.04 and 0.01 go; the rest / 0.95.
        var (rows, report) = Expand([Row(0, 0.7f, 0.25f, 0.04f, 0.01f)], new DistillationOptions { DropThreshold = 0.05 });
        Assert.Equal([1u, 2u], rows.Select(r => r.Label));
        Assert.Equal(0.7 / 0.95, rows[0].Weight, 6);
        Assert.Equal(0.25 / 0.95, rows[1].Weight, 6);
        Assert.Equal(2, report.DroppedTargets);
        Assert.Equal(0.05, report.DroppedMass, 6);
        Assert.Equal(0.05, report.MaxDroppedMass, 6);
        Assert.Equal(2, report.ExpandedRows);
    }

    [Fact]
    public void LargestTarget_IsAlwaysKept_AndZerosMakeNoRows()
    {
        // A flat row under a high threshold keeps its largest target alone, at weight 1; exact zeros are counted apart.
        var (rows, report) = Expand([Row(-1, 0.3f, 0.3f, 0.4f, 0f)], new DistillationOptions { DropThreshold = 0.5 });
        var only = Assert.Single(rows);
        Assert.Equal(3u, only.Label);
        Assert.Equal(1f, only.Weight);
        Assert.Equal(1, report.ZeroTargets);
        Assert.Equal(2, report.DroppedTargets);
    }

    [Fact]
    public void AlphaOne_GivesOneHardRowPerSourceRow()
    {
        var (rows, report) = Expand([Row(1, 0.5f, 0.3f, 0.2f), Row(2, 0.1f, 0.1f, 0.8f)], new DistillationOptions { Alpha = 1 });
        Assert.Equal([2u, 3u], rows.Select(r => r.Label));
        Assert.All(rows, r => Assert.Equal(1f, r.Weight));
        Assert.Equal(4, report.ZeroTargets);
        Assert.Equal(0, report.DroppedTargets);
    }

    [Fact]
    public void TopKSoftLabels_AreRenormalised()
    {
        // A sparse top-2 label that no longer sums to 1: [0.6, 0.2, 0, 0] -> [0.75, 0.25].
        var (rows, _) = Expand([Row(0, 0.6f, 0.2f, 0f, 0f)], new DistillationOptions { DropThreshold = 0 });
        Assert.Equal([0.75f, 0.25f], rows.Select(r => r.Weight));
    }

    [Theory]
    [InlineData(float.NaN, "row 1")]
    [InlineData(-0.1f, "row 1")]
    public void InvalidSoftLabels_NameTheRow(float bad, string where)
    {
        var e = Assert.Throws<ArgumentException>(() => Expand([Row(0, 0.5f, 0.5f), Row(0, bad, 0.5f)], new DistillationOptions()));
        Assert.Contains(where, e.Message);
    }

    [Fact]
    public void LabelOutOfRange_IsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => Expand([Row(5, 0.5f, 0.5f)], new DistillationOptions()));
        Assert.Contains("label 5", e.Message);
    }

    [Fact]
    public void AlphaWithoutAnyHardLabel_IsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => Expand([Row(-1, 0.5f, 0.5f)], new DistillationOptions { Alpha = 0.5 }));
        Assert.Contains("no row has a hard label", e.Message);
    }

    [Fact]
    public void MissingColumn_IsNamed()
    {
        var e = Assert.Throws<ArgumentException>(() => Expand([Row(0, 0.5f, 0.5f)], new DistillationOptions { SoftLabelColumnName = "Probabilities" }));
        Assert.Contains("'Probabilities'", e.Message);
    }
}
