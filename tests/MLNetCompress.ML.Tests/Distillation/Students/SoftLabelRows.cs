using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetCompress.Testing;
using MLNetCompress.Data;
using MLNetCompress.Runtime;

namespace MLNetCompress.ML.Tests.Distillation.Students;

/// <summary>Soft-label views for the student tests, built in memory with the soft-label file's columns
/// (Id, Label, Features, SoftLabel). The teacher's are computed here with ONNX Runtime directly, independently
/// of the soft-label generator.</summary>
internal static class SoftLabelRows
{
    public sealed class Row
    {
        public string Id { get; set; } = "";

        public int Label { get; set; }

        public float[] Features { get; set; } = [];

        public float[] SoftLabel { get; set; } = [];
    }

    public static IDataView Load(MLContext ml, IReadOnlyList<Row> rows)
    {
        var definition = SchemaDefinition.Create(typeof(Row));
        definition[nameof(Row.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, rows[0].Features.Length);
        definition[nameof(Row.SoftLabel)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, rows[0].SoftLabel.Length);
        return ml.Data.LoadFromEnumerable(rows, definition);
    }

    /// <summary>The CNN sample's softmax(z / T) over a split of the bundled Fashion-MNIST subset; features are the
    /// teacher's input (pixels / 255) flattened.</summary>
    public static List<Row> FromCnn(FashionMnistSplit split, double temperature, int? maxRows = null)
    {
        using var runner = ModelRunner.Load(RealModels.CnnSample, outputNames: ["logits"]);
        var feed = new FashionMnistFeed(RealModels.FashionMnistSubset, runner.Inputs, split);
        var rows = new List<Row>();
        foreach (var batch in feed.Batches(100, maxRows))
        {
            var pixels = batch.Inputs[runner.Inputs[0].Name].FloatData;
            var logits = runner.Run(batch)["logits"];
            int d = pixels.Length / batch.RowCount;
            for (var i = 0; i < batch.RowCount; i++)
                rows.Add(new Row
                {
                    Id = batch.Ids[i],
                    Label = batch.Labels![i],
                    Features = pixels.AsSpan(i * d, d).ToArray(),
                    SoftLabel = Softmax(logits.Row(i), temperature),
                });
        }
        return rows;
    }

    /// <summary>softmax(z / T) in double precision.</summary>
    public static float[] Softmax(ReadOnlySpan<float> z, double temperature)
    {
        double max = double.NegativeInfinity;
        foreach (var v in z) max = Math.Max(max, v);
        var e = new double[z.Length];
        double sum = 0;
        for (var i = 0; i < z.Length; i++) sum += e[i] = Math.Exp((z[i] - max) / temperature);
        return e.Select(v => (float)(v / sum)).ToArray();
    }

    /// <summary>Hard-labelled rows with one-hot soft labels: three well separated classes in 4 features.</summary>
    public static List<Row> Blobs(int count, int seed)
    {
        var random = new Random(seed);
        var rows = new List<Row>(count);
        for (var i = 0; i < count; i++)
        {
            int y = random.Next(3);
            var x = new float[4];
            for (var j = 0; j < x.Length; j++) x[j] = (float)(random.NextDouble() * 2 + (j == y ? 1.5 : 0) + (j == 3 ? y * 0.5 : 0));
            var soft = new float[3];
            soft[y] = 0.7f;
            soft[(y + 1) % 3] = 0.2f;
            soft[(y + 2) % 3] = 0.1f;
            rows.Add(new Row { Id = $"blob{i}", Label = y, Features = x, SoftLabel = soft });
        }
        return rows;
    }
}
