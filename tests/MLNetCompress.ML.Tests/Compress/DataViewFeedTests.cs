using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNetCompress.Data;
using MLNetCompress.ML.Data;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;

namespace MLNetCompress.ML.Tests.Compress;

public class DataViewFeedTests
{
    [Fact]
    public void Batches_MatchTheIdxFeedOfTheSameImages_RowForRow()
    {
        var ml = new MLContext(seed: 1);
        var inputs = ModelRunner.Load(RealModels.CnnSample).Inputs;   // "input" [N,1,28,28]
        var reference = new FashionMnistFeed(RealModels.FashionMnistSubset, inputs, FashionMnistSplit.Test);
        var feed = new DataViewFeed(MnistRows.Load(ml, FashionMnistSplit.Test, 50), inputs);
        Assert.Equal(50, feed.Count);

        var mine = feed.Batches(16).ToList();
        var theirs = reference.Batches(16, 50).ToList();
        Assert.Equal([16, 16, 16, 2], mine.Select(b => b.RowCount));
        Assert.Equal(theirs.Select(b => b.FirstRow), mine.Select(b => b.FirstRow));
        for (int i = 0; i < mine.Count; i++)
        {
            var a = mine[i].Inputs["input"];
            var b = theirs[i].Inputs["input"];
            Assert.Equal(b.Shape, a.Shape);
            Assert.Equal(b.FloatData, a.FloatData);
        }
        Assert.Equal("row#48", mine[3].Ids[0]);
        Assert.Equal(20, feed.Batches(16, maxRows: 20).Sum(b => b.RowCount));
    }

    private sealed class Mixed
    {
        [VectorType(6)] public double[] X { get; set; } = [];

        [VectorType(3)] public int[] Ids { get; set; } = [];

        public float Scalar { get; set; }
    }

    [Fact]
    public void DoubleAndInt32Columns_Convert_FreeDimsTakeTheRowLength_AndAFixedBatchIsKept()
    {
        var ml = new MLContext(seed: 1);
        var rows = Enumerable.Range(0, 5).Select(r => new Mixed
        {
            X = Enumerable.Range(0, 6).Select(i => r * 10 + i + 0.5).ToArray(),
            Ids = [r, r + 1, r + 2],
            Scalar = r,
        }).ToArray();
        var data = ml.Data.LoadFromEnumerable(rows);
        ModelInputInfo[] inputs =
        [
            new("x", TensorElementType.Float, [2, 2, -1]),
            new("ids", TensorElementType.Int64, [-1, -1]),
            new("s", TensorElementType.Float, [-1, 1]),
        ];
        var feed = new DataViewFeed(data, inputs, new Dictionary<string, string> { ["x"] = "X", ["ids"] = "Ids", ["s"] = "Scalar" });
        // The model fixes the batch at 2: five rows give two full batches, the fifth row is left over.
        var batches = feed.Batches(4).ToList();
        Assert.Equal([2, 2], batches.Select(b => b.RowCount));
        var x = batches[1].Inputs["x"];
        Assert.Equal([2L, 2, 3], x.Shape);
        Assert.Equal(rows[2].X.Concat(rows[3].X).Select(v => (float)v), x.FloatData);
        var ids = batches[1].Inputs["ids"];
        Assert.Equal([2L, 3], ids.Shape);
        Assert.Equal([2L, 3, 4, 3, 4, 5], ids.Int64Data);
        Assert.Equal([2f, 3f], batches[1].Inputs["s"].FloatData);
    }

    [Fact]
    public void AColumnOfTheWrongType_OrMissing_IsAOneLineError()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { new Mixed { X = new double[6], Ids = new int[3] } });
        var e = Assert.Throws<DataSpecException>(() => new DataViewFeed(data, [new("Ids", TensorElementType.Float, [-1, 3])]));
        Assert.Equal("column 'Ids' holds Vector<Int32, 3> but model input 'Ids' wants Float; convert the column (e.g. mlContext.Transforms.Conversion.ConvertType) before the model", e.Message);
        e = Assert.Throws<DataSpecException>(() => new DataViewFeed(data, [new("input", TensorElementType.Float, [-1, 3])]));
        Assert.StartsWith("model input 'input' reads column 'input', which the data does not have; its columns: X, Ids, Scalar", e.Message);
        e = Assert.Throws<DataSpecException>(() => new DataViewFeed(data, [new("X", TensorElementType.Float, [-1, 4])]).Batches(1).ToList());
        Assert.StartsWith("column 'X' has 6 values a row, which do not fill model input 'X' [N,4]", e.Message);
    }
}
