using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetCompress.ML.Distillation;
using MLNetCompress.Testing;

namespace MLNetCompress.ML.Tests.Distillation.SoftLabels;

public class SoftLabelFileTests
{
    private const int Classes = 7;

    // Random rows in a given layout; ids include the characters CSV has to quote.
    internal static List<SoftLabelBlock> RandomBlocks(int rows, int? topK, int? features, int seed, int blockRows = 37)
    {
        var random = new Random(seed);
        var blocks = new List<SoftLabelBlock>();
        string[] odd = ["plain", "with,comma", "with \"quote\"", "two\nlines", "", "ünïcödé"];
        for (var start = 0; start < rows; start += blockRows)
        {
            var n = Math.Min(blockRows, rows - start);
            var b = new SoftLabelBlock(n, Classes, topK, features);
            for (var r = 0; r < n; r++)
            {
                b.Ids[r] = $"row{start + r}:{odd[(start + r) % odd.Length]}";
                b.Labels[r] = (start + r) % 5 == 0 ? -1 : random.Next(Classes);
                if (features is not null)
                    for (var i = 0; i < features; i++) b.FeatureRow(r)[i] = (float)(random.NextDouble() * 2e3 - 1e3) * (i % 3 == 0 ? 1e-30f : 1f);
                var logits = Enumerable.Range(0, Classes).Select(_ => (float)(random.NextDouble() * 8)).ToArray();
                var p = new float[Classes];
                SoftLabelMath.Softmax(logits, 1.7, p);
                if (topK is null) p.CopyTo(b.DenseRow(r));
                else SoftLabelMath.TopK(p, b.IndexRow(r), b.ValueRow(r));
            }
            blocks.Add(b);
        }
        return blocks;
    }

    internal static SoftLabelInfo Layout(int? topK, int? features) => new()
    {
        Classes = Classes,
        Temperature = 1.7,
        TopK = topK,
        FeatureLength = features,
        HasLabels = true,
        Teachers = ["a.onnx", "b.onnx"],
        TeacherSha256 = ["00", "11"],
        OutputName = "logits",
        Combine = SoftLabelCombine.Geometric,
        Data = "random",
    };

    public static TheoryData<string, int?, int?> Layouts()
    {
        var data = new TheoryData<string, int?, int?>();
        foreach (var ext in new[] { ".idv", ".csv", ".parquet" })
        {
            data.Add(ext, null, 5);
            data.Add(ext, 3, 5);
            data.Add(ext, null, null);
            data.Add(ext, 2, null);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void EachWriterRoundTripsThroughLoadWithIdenticalValues(string extension, int? topK, int? features)
    {
        var dir = RealModels.TempDir("softlabel-file");
        var path = Path.Combine(dir, "labels" + extension);
        var blocks = RandomBlocks(101, topK, features, seed: 3);
        var written = SoftLabelFile.Write(path, Layout(topK, features), blocks);
        Assert.Equal(101, written.Rows);

        var info = SoftLabelFile.ReadInfo(path);
        Assert.Equal(Classes, info.Classes);
        Assert.Equal(1.7, info.Temperature);
        Assert.Equal(101, info.Rows);
        Assert.Equal(topK, info.TopK);
        Assert.Equal(["a.onnx", "b.onnx"], info.Teachers);
        Assert.True(File.Exists(SoftLabelFile.SidecarPath(path)));
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));

        var ml = new MLContext(seed: 1);
        var view = SoftLabelFile.Load(ml, path);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, Classes), view.Schema[SoftLabelFile.SoftLabelColumn].Type);
        Assert.Equal(NumberDataViewType.Int32, view.Schema[SoftLabelFile.LabelColumn].Type);
        Assert.Equal(TextDataViewType.Instance, view.Schema[SoftLabelFile.IdColumn].Type);
        if (features is null) Assert.Null(view.Schema.GetColumnOrNull(SoftLabelFile.FeaturesColumn));
        else Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, features.Value), view.Schema[SoftLabelFile.FeaturesColumn].Type);

        var rows = ReadAll(view, features is not null);
        var expected = blocks.SelectMany(b => Enumerable.Range(0, b.Rows).Select(r => (b, r))).ToList();
        Assert.Equal(expected.Count, rows.Count);
        var dense = new float[Classes];
        for (var i = 0; i < rows.Count; i++)
        {
            var (b, r) = expected[i];
            Assert.Equal(b.Ids[r], rows[i].Id);
            Assert.Equal(b.Labels[r], rows[i].Label);
            if (features is not null) Assert.Equal(b.FeatureRow(r).ToArray(), rows[i].Features);
            b.CopyDenseRow(r, dense);
            // Bit-for-bit: every writer keeps the exact float values.
            Assert.Equal(dense, rows[i].SoftLabel);
        }
    }

    [Fact]
    public void TopKFormRestoresADistribution()
    {
        var p = new float[] { 0.05f, 0.5f, 0.1f, 0.3f, 0.05f };
        var idx = new int[2];
        var val = new float[2];
        SoftLabelMath.TopK(p, idx, val);
        Assert.Equal([1, 3], idx);
        Assert.Equal([0.5f, 0.3f], val);
        var dense = new float[5];
        SoftLabelMath.Densify(idx, val, dense);
        // The 0.2 not stored is shared by the three other classes.
        Assert.Equal(0.5f, dense[1]);
        Assert.Equal(0.3f, dense[3]);
        Assert.Equal(0.2f / 3, dense[0], 6);
        Assert.Equal(1.0, dense.Sum(), 5);
    }

    [Fact]
    public void ReadInfoNamesWhatIsWrong()
    {
        var dir = RealModels.TempDir("softlabel-bad");
        var missing = Assert.Throws<SoftLabelException>(() => SoftLabelFile.ReadInfo(Path.Combine(dir, "none.parquet")));
        Assert.Contains("does not exist", missing.Message);
        var ext = Assert.Throws<SoftLabelException>(() => SoftLabelFile.FormatOf("x.txt"));
        Assert.Contains(".idv, .csv or .parquet", ext.Message);
        var csv = Path.Combine(dir, "a.csv");
        File.WriteAllText(csv, "Id,Label\n");
        var noSidecar = Assert.Throws<SoftLabelException>(() => SoftLabelFile.ReadInfo(csv));
        Assert.Contains("no description", noSidecar.Message);
        File.WriteAllText(SoftLabelFile.SidecarPath(csv), "{\"format\":\"other\"}");
        Assert.Contains("not a soft-label description", Assert.Throws<SoftLabelException>(() => SoftLabelFile.ReadInfo(csv)).Message);
        var notParquet = Path.Combine(dir, "b.parquet");
        File.WriteAllText(notParquet, "not parquet at all");
        Assert.Throws<SoftLabelException>(() => SoftLabelFile.ReadInfo(notParquet));
    }

    internal sealed record Row(string Id, int Label, float[]? Features, float[] SoftLabel);

    internal static List<Row> ReadAll(IDataView view, bool features)
    {
        var rows = new List<Row>();
        using var cursor = view.GetRowCursor(view.Schema);
        var id = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema[SoftLabelFile.IdColumn]);
        var label = cursor.GetGetter<int>(view.Schema[SoftLabelFile.LabelColumn]);
        var soft = cursor.GetGetter<VBuffer<float>>(view.Schema[SoftLabelFile.SoftLabelColumn]);
        var feat = features ? cursor.GetGetter<VBuffer<float>>(view.Schema[SoftLabelFile.FeaturesColumn]) : null;
        ReadOnlyMemory<char> idValue = default;
        int labelValue = 0;
        VBuffer<float> softValue = default, featValue = default;
        while (cursor.MoveNext())
        {
            id(ref idValue);
            label(ref labelValue);
            soft(ref softValue);
            feat?.Invoke(ref featValue);
            rows.Add(new Row(idValue.ToString(), labelValue, features ? featValue.DenseValues().ToArray() : null, softValue.DenseValues().ToArray()));
        }
        return rows;
    }
}
