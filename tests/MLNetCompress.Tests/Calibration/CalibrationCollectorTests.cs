using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.Calibration;

public class CalibrationCollectorTests
{
    [Fact]
    public void CovarianceOfAnIntermediateMatchesOneComputedByHand()
    {
        // h0 = x·W1 is an intermediate value of the MLP; its statistics are recomputed here from x and W1.
        const int inF = 6, hidden = 5, rows = 40;
        var model = TestModels.Mlp(inFeatures: inF, hidden: hidden, outFeatures: 3, seed: 2);
        var graph = model.ToGraph();
        var w1 = TestTensors.RandomValues(inF * hidden, 2);
        var x = TestTensors.RandomValues(rows * inF, 77);
        var feed = new NpyRows(x, rows, inF);
        var stats = CalibrationCollector.CollectCovariances(graph, [new CovarianceRequest("h0", -1)], feed,
            new CalibrationOptions { BatchSize = 7, MaxRows = rows })["h0"];

        Assert.Equal(rows, stats.Count);
        var h = new double[rows * hidden];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < hidden; j++)
                for (int i = 0; i < inF; i++) h[r * hidden + j] += x[r * inF + i] * (double)w1[i * hidden + j];
        var second = stats.SecondMoment();
        var mean = stats.Mean();
        for (int a = 0; a < hidden; a++)
        {
            Assert.Equal(Enumerable.Range(0, rows).Average(r => h[r * hidden + a]), mean[a], 1e-5);
            for (int b = 0; b < hidden; b++)
                Assert.Equal(Enumerable.Range(0, rows).Average(r => h[r * hidden + a] * h[r * hidden + b]), second[a * hidden + b], 1e-5);
        }
        // The graph handed in is untouched: the extra output went on a copy.
        Assert.Single(graph.Main.Proto.Output);
    }

    [Fact]
    public void ChannelAxisVectorsOfNchwAreGathered()
    {
        // [1, 2, 2, 2]: the channel vectors are (x[0,0,p], x[0,1,p]) for the 4 positions p.
        float[] data = [1, 2, 3, 4, 10, 20, 30, 40];
        var cov = new RunningCovariance(2);
        cov.AddTensor(data, [1, 2, 2, 2], featureAxis: 1);
        Assert.Equal(4, cov.Count);
        Assert.Equal([2.5, 25], cov.Mean());
        var m = cov.SecondMoment();
        Assert.Equal((1 + 4 + 9 + 16) / 4.0, m[0], 12);
        Assert.Equal((10 + 40 + 90 + 160) / 4.0, m[1], 12);
        Assert.Equal(m[1], m[2]);
        var c = cov.Covariance();
        Assert.Equal(m[0] - 2.5 * 2.5, c[0], 12);
    }

    [Fact]
    public void CrossStatisticsPairTheReferenceWithTheWorkingModel()
    {
        // The working model's W1 is the reference's scaled by 2: h0' = 2·h0, so E[h0·h0'ᵀ] = 2·E[h0·h0ᵀ].
        const int rows = 24;
        var reference = TestModels.Mlp(inFeatures: 4, hidden: 3, outFeatures: 2, seed: 5).ToGraph();
        var working = TestModels.Model(13)
            .Input("x", OnnxDataType.Float, "batch", 4)
            .Initializer(TestTensors.Float("W1", [4, 3], TestTensors.RandomValues(12, 5).Select(v => 2 * v).ToArray()))
            .Node("MatMul", ["x", "W1"], ["h0"])
            .Output("h0", OnnxDataType.Float, "batch", 3)
            .ToGraph();
        var feed = new NpyRows(TestTensors.RandomValues(rows * 4, 8), rows, 4);
        var request = new CovarianceRequest("h0", -1);
        var pair = CalibrationCollector.CollectCrossCovariances(reference, working, [request], feed, new CalibrationOptions { BatchSize = 5 })["h0"];
        var single = CalibrationCollector.CollectCovariances(reference, [request], feed)["h0"];
        Assert.Equal(rows, pair.Count);
        var cross = pair.CrossMoment();
        var second = single.SecondMoment();
        for (int i = 0; i < 9; i++) Assert.Equal(2 * second[i], cross[i], 1e-5);
        var workingSecond = pair.Working.SecondMoment();
        for (int i = 0; i < 9; i++) Assert.Equal(4 * second[i], workingSecond[i], 1e-4);
        Assert.Equal(single.Mean(), pair.ReferenceMean(), (a, b) => Math.Abs(a - b) < 1e-6);
    }

    [Fact]
    public void UnknownValuesAreRefused()
    {
        var graph = TestModels.Mlp().ToGraph();
        var feed = new NpyRows(new float[8], 2, 4);
        Assert.Throws<InvalidOperationException>(() =>
            CalibrationCollector.CollectCovariances(graph, [new CovarianceRequest("nope", -1)], feed));
    }

    /// <summary>Rows of a float matrix as a feed for the MLP's "x" input.</summary>
    private sealed class NpyRows(float[] data, int rows, int cols) : DataFeed([new ModelInputInfo("x", Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float, [-1, cols])])
    {
        public override string Description => "test rows";
        public override long RowCount => rows;
        public override bool HasLabels => false;

        protected override DataBatch CreateBatch(long start, int count) =>
            new(new Dictionary<string, NamedTensor> { ["x"] = new NamedTensor(data.AsSpan((int)start * cols, count * cols).ToArray(), [count, cols]) },
                count, start, RowIds("row", start, count));
    }
}
