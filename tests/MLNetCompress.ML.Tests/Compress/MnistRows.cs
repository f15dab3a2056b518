using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetCompress.Data;
using MLNetCompress.Testing;

namespace MLNetCompress.ML.Tests.Compress;

/// <summary>Rows of the bundled Fashion-MNIST subset as an ML.NET data view: column "input" holds the 784 pixels in 0..1.</summary>
internal static class MnistRows
{
    public sealed class Row
    {
        [VectorType(1, 1, 28, 28)] public float[] input { get; set; } = [];

        public uint Label { get; set; }
    }

    /// <summary>The first <paramref name="count"/> rows of a split, from the IDX files by <see cref="FashionMnistFeed"/>.</summary>
    public static Row[] Read(FashionMnistSplit split, int count)
    {
        var feed = new FashionMnistFeed(RealModels.FashionMnistSubset,
            [new ModelInputInfo("input", Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float, [-1, 784])], split);
        var rows = new List<Row>();
        foreach (var batch in feed.Batches(100, count))
        {
            var pixels = batch.Inputs["input"].FloatData;
            for (int r = 0; r < batch.RowCount; r++)
                rows.Add(new Row { input = pixels.AsSpan(r * 784, 784).ToArray(), Label = (uint)batch.Labels![r] });
        }
        return rows.ToArray();
    }

    public static IDataView Load(MLContext ml, FashionMnistSplit split, int count) => ml.Data.LoadFromEnumerable(Read(split, count));

    /// <summary>The float vectors of a column, row by row.</summary>
    public static float[][] Column(IDataView data, string name) =>
        data.GetColumn<VBuffer<float>>(name).Select(v => v.DenseValues().ToArray()).ToArray();

    public static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += (double)a[i] * b[i]; na += (double)a[i] * a[i]; nb += (double)b[i] * b[i]; }
        return dot / Math.Sqrt(na * nb);
    }
}
