using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetCompress.ML.Distillation;

/// <summary>Soft-label files in ML.NET's binary format (.idv), written by <c>SaveAsBinary</c> and read by
/// <c>LoadFromBinary</c>.</summary>
internal static class IdvSoftLabels
{
    private const int ReadBlockRows = 4096;

    public static long Write(string path, SoftLabelInfo template, IEnumerable<SoftLabelBlock> blocks)
    {
        long rows = 0;
        IEnumerable<SoftLabelBlock> Counted()
        {
            foreach (var b in blocks)
            {
                rows += b.Rows;
                yield return b;
            }
        }
        var view = new SoftLabelDataView(Counted, template, densify: false, singlePass: true);
        using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
        {
            new MLContext().Data.SaveAsBinary(view, stream);
            stream.Flush(flushToDisk: true);
        }
        return rows;
    }

    /// <summary>The dense file as ML.NET reads it, with its column types checked against the description.</summary>
    public static IDataView LoadDense(MLContext ml, string path, SoftLabelInfo info)
    {
        var data = Open(ml, path, info);
        var keep = new List<string> { SoftLabelFile.IdColumn, SoftLabelFile.LabelColumn };
        if (info.FeatureLength is not null) keep.Add(SoftLabelFile.FeaturesColumn);
        keep.Add(SoftLabelFile.SoftLabelColumn);
        return ml.Transforms.SelectColumns(keep.ToArray()).Fit(data).Transform(data);
    }

    public static IEnumerable<SoftLabelBlock> Read(string path, SoftLabelInfo info)
    {
        var ml = new MLContext();
        var data = Open(ml, path, info);
        var schema = data.Schema;
        using var cursor = data.GetRowCursor(schema);
        var id = cursor.GetGetter<ReadOnlyMemory<char>>(schema[SoftLabelFile.IdColumn]);
        var label = cursor.GetGetter<int>(schema[SoftLabelFile.LabelColumn]);
        var features = info.FeatureLength is null ? null : cursor.GetGetter<VBuffer<float>>(schema[SoftLabelFile.FeaturesColumn]);
        var dense = info.TopK is null ? cursor.GetGetter<VBuffer<float>>(schema[SoftLabelFile.SoftLabelColumn]) : null;
        var indices = info.TopK is null ? null : cursor.GetGetter<VBuffer<int>>(schema[SoftLabelFile.IndicesColumn]);
        var values = info.TopK is null ? null : cursor.GetGetter<VBuffer<float>>(schema[SoftLabelFile.ValuesColumn]);
        ReadOnlyMemory<char> idValue = default;
        VBuffer<float> floats = default;
        VBuffer<int> ints = default;
        var more = true;
        while (more)
        {
            var block = new SoftLabelBlock(ReadBlockRows, info.Classes, info.TopK, info.FeatureLength);
            var rows = 0;
            while (rows < ReadBlockRows && (more = cursor.MoveNext()))
            {
                id(ref idValue);
                block.Ids[rows] = idValue.ToString();
                label(ref block.Labels[rows]);
                if (features is not null)
                {
                    features(ref floats);
                    CopyDense(floats, block.FeatureRow(rows));
                }
                if (dense is not null)
                {
                    dense(ref floats);
                    CopyDense(floats, block.DenseRow(rows));
                }
                else
                {
                    indices!(ref ints);
                    CopyDense(ints, block.IndexRow(rows));
                    values!(ref floats);
                    CopyDense(floats, block.ValueRow(rows));
                }
                rows++;
            }
            if (rows == 0) yield break;
            yield return rows == ReadBlockRows ? block : Shrink(block, rows);
        }
    }

    private static void CopyDense<T>(in VBuffer<T> source, Span<T> destination)
    {
        if (source.IsDense)
        {
            source.GetValues().CopyTo(destination);
            return;
        }
        destination.Clear();
        var values = source.GetValues();
        var indices = source.GetIndices();
        for (var i = 0; i < values.Length; i++) destination[indices[i]] = values[i];
    }

    private static SoftLabelBlock Shrink(SoftLabelBlock block, int rows)
    {
        var result = new SoftLabelBlock(rows, block.Classes, block.TopK, block.FeatureLength);
        block.Ids.AsSpan(0, rows).CopyTo(result.Ids);
        block.Labels.AsSpan(0, rows).CopyTo(result.Labels);
        if (block.Features is not null) block.Features.AsSpan(0, rows * block.FeatureLength!.Value).CopyTo(result.Features);
        if (block.Dense is not null) block.Dense.AsSpan(0, rows * block.Classes).CopyTo(result.Dense);
        if (block.TopIndices is not null)
        {
            block.TopIndices.AsSpan(0, rows * block.TopK!.Value).CopyTo(result.TopIndices);
            block.TopValues!.AsSpan(0, rows * block.TopK!.Value).CopyTo(result.TopValues);
        }
        return result;
    }

    private static IDataView Open(MLContext ml, string path, SoftLabelInfo info)
    {
        IDataView data;
        try
        {
            data = ml.Data.LoadFromBinary(path);
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or IOException or ArgumentException)
        {
            throw new SoftLabelException($"'{path}' is not a readable ML.NET binary file ({e.Message.Split('\n')[0].TrimEnd('.')}); regenerate it with soft-labels", e);
        }
        void Expect(string name, DataViewType type)
        {
            var column = data.Schema.GetColumnOrNull(name);
            if (column is null || !column.Value.Type.Equals(type))
                throw new SoftLabelException($"'{path}' has {(column is null ? "no column" : $"column {name} of type {column.Value.Type}")} where its description wants {name} of type {type}; regenerate it");
        }
        Expect(SoftLabelFile.IdColumn, TextDataViewType.Instance);
        Expect(SoftLabelFile.LabelColumn, NumberDataViewType.Int32);
        if (info.FeatureLength is int f) Expect(SoftLabelFile.FeaturesColumn, new VectorDataViewType(NumberDataViewType.Single, f));
        if (info.TopK is int k)
        {
            Expect(SoftLabelFile.IndicesColumn, new VectorDataViewType(NumberDataViewType.Int32, k));
            Expect(SoftLabelFile.ValuesColumn, new VectorDataViewType(NumberDataViewType.Single, k));
        }
        else
        {
            Expect(SoftLabelFile.SoftLabelColumn, new VectorDataViewType(NumberDataViewType.Single, info.Classes));
        }
        return data;
    }
}
