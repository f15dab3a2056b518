using Parquet;
using Parquet.Schema;

namespace MLNetCompress.ML.Distillation;

/// <summary>Soft-label files in Apache Parquet (Parquet.Net): Id a required string, Label a required int32, vectors
/// LIST columns of required values, the description in the key-value metadata. Rows are grouped into row groups of
/// <see cref="RowGroupRows"/> rows.</summary>
internal static class ParquetSoftLabels
{
    /// <summary>Rows per row group (the last may hold fewer).</summary>
    public const int RowGroupRows = 16_384;

    private sealed record Columns(DataField Id, DataField Label, DataField? Features, DataField? Dense, DataField? Indices, DataField? Values, ParquetSchema Schema);

    private static Columns SchemaFor(SoftLabelInfo info)
    {
        var id = new DataField<string>(SoftLabelFile.IdColumn, false);
        var label = new DataField<int>(SoftLabelFile.LabelColumn);
        var fields = new List<Field> { id, label };
        ListField? features = null, dense = null, indices = null, values = null;
        if (info.FeatureLength is not null) fields.Add(features = new ListField(SoftLabelFile.FeaturesColumn, new DataField<float>("element")));
        if (info.TopK is null)
        {
            fields.Add(dense = new ListField(SoftLabelFile.SoftLabelColumn, new DataField<float>("element")));
        }
        else
        {
            fields.Add(indices = new ListField(SoftLabelFile.IndicesColumn, new DataField<int>("element")));
            fields.Add(values = new ListField(SoftLabelFile.ValuesColumn, new DataField<float>("element")));
        }
        var schema = new ParquetSchema(fields);
        return new Columns(id, label, (DataField?)features?.Item, (DataField?)dense?.Item, (DataField?)indices?.Item, (DataField?)values?.Item, schema);
    }

    public static long Write(string path, SoftLabelInfo template, IEnumerable<SoftLabelBlock> blocks) =>
        WriteAsync(path, template, blocks).GetAwaiter().GetResult();

    private static async Task<long> WriteAsync(string path, SoftLabelInfo template, IEnumerable<SoftLabelBlock> blocks)
    {
        var columns = SchemaFor(template);
        long rows = 0;
        await using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16))
        {
            await using (var writer = await ParquetWriter.CreateAsync(columns.Schema, stream).ConfigureAwait(false))
            {
                foreach (var block in SoftLabelBlock.Regroup(blocks, RowGroupRows))
                {
                    using var group = writer.CreateRowGroup();
                    await group.WriteAsync(columns.Id, block.Ids).ConfigureAwait(false);
                    await group.WriteAsync<int>(columns.Label, block.Labels).ConfigureAwait(false);
                    if (columns.Features is not null) await WriteList(group, columns.Features, block.Features!, block.Rows, block.FeatureLength!.Value).ConfigureAwait(false);
                    if (columns.Dense is not null) await WriteList(group, columns.Dense, block.Dense!, block.Rows, block.Classes).ConfigureAwait(false);
                    if (columns.Indices is not null)
                    {
                        await WriteList(group, columns.Indices, block.TopIndices!, block.Rows, block.TopK!.Value).ConfigureAwait(false);
                        await WriteList(group, columns.Values!, block.TopValues!, block.Rows, block.TopK!.Value).ConfigureAwait(false);
                    }
                    group.CompleteValidate();
                    rows += block.Rows;
                }
                // The footer is written when the writer closes, so the row count is known by then.
                writer.CustomMetadata = new Dictionary<string, string> { [SoftLabelFile.MetadataKey] = (template with { Rows = rows }).ToJson() };
            }
            await stream.FlushAsync().ConfigureAwait(false);
            stream.Flush(flushToDisk: true);
        }
        return rows;

        // A fixed-length list per row: repetition level 0 starts a row, 1 continues it; every value is defined.
        static Task WriteList<T>(ParquetRowGroupWriter group, DataField field, T[] data, int rowCount, int width) where T : struct
        {
            var n = rowCount * width;
            var repetition = new int[n];
            for (var i = 0; i < n; i++) repetition[i] = i % width == 0 ? 0 : 1;
            var definition = new int[n];
            Array.Fill(definition, field.MaxDefinitionLevel);
            return group.WriteAllPartsAsync<T>(field, data.AsMemory(0, n), definition, repetition, default);
        }
    }

    /// <summary>The description in the file's key-value metadata, or null when it has none.</summary>
    public static SoftLabelInfo? ReadEmbeddedInfo(string path)
    {
        try
        {
            return ReadEmbeddedInfoAsync(path).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or InvalidOperationException)
        {
            throw new SoftLabelException($"'{path}' is not a readable Parquet file ({e.Message.Split('\n')[0].TrimEnd('.')}); regenerate it with soft-labels", e);
        }
    }

    private static async Task<SoftLabelInfo?> ReadEmbeddedInfoAsync(string path)
    {
        await using var stream = File.OpenRead(path);
        await using var reader = await ParquetReader.CreateAsync(stream).ConfigureAwait(false);
        return reader.CustomMetadata.TryGetValue(SoftLabelFile.MetadataKey, out var json) ? SoftLabelInfo.FromJson(json, $"the metadata of '{path}'") : null;
    }

    /// <summary>The rows of the file, one block per row group.</summary>
    public static IEnumerable<SoftLabelBlock> Read(string path, SoftLabelInfo info)
    {
        using var stream = File.OpenRead(path);
        var reader = ParquetReader.CreateAsync(stream).GetAwaiter().GetResult();
        try
        {
            foreach (var block in ReadGroups(reader, path, info)) yield return block;
        }
        finally
        {
            reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static IEnumerable<SoftLabelBlock> ReadGroups(ParquetReader reader, string path, SoftLabelInfo info)
    {
        var columns = SchemaFor(info);
        var fields = reader.Schema.GetDataFields();
        DataField Find(DataField? expected) => Array.Find(fields, f => f.Path.Equals(expected!.Path))
            ?? throw new SoftLabelException($"'{path}' has no column '{expected!.Path}' though its description says it should; regenerate it");
        var id = Find(columns.Id);
        var label = Find(columns.Label);
        var features = columns.Features is null ? null : Find(columns.Features);
        var dense = columns.Dense is null ? null : Find(columns.Dense);
        var indices = columns.Indices is null ? null : Find(columns.Indices);
        var values = columns.Values is null ? null : Find(columns.Values);
        for (var g = 0; g < reader.RowGroupCount; g++)
        {
            using var group = reader.OpenRowGroupReader(g);
            var rows = checked((int)group.RowCount);
            var block = new SoftLabelBlock(rows, info.Classes, info.TopK, info.FeatureLength);
            var ids = new string?[rows];
            group.ReadAsync(id, ids.AsMemory()).GetAwaiter().GetResult();
            for (var r = 0; r < rows; r++) block.Ids[r] = ids[r] ?? "";
            group.ReadAsync<int>(label, block.Labels.AsMemory()).GetAwaiter().GetResult();
            if (features is not null) ReadList(group, features, block.Features!, rows, info.FeatureLength!.Value, path);
            if (dense is not null) ReadList(group, dense, block.Dense!, rows, info.Classes, path);
            if (indices is not null)
            {
                ReadList(group, indices, block.TopIndices!, rows, info.TopK!.Value, path);
                ReadList(group, values!, block.TopValues!, rows, info.TopK!.Value, path);
            }
            yield return block;
        }
    }

    private static void ReadList<T>(ParquetRowGroupReader group, DataField field, T[] destination, int rows, int width, string path) where T : struct
    {
        var n = rows * width;
        var repetition = new int[n];
        var definition = new int[n];
        group.ReadRawAsync<T>(field, destination.AsMemory(0, n), definition, repetition).GetAwaiter().GetResult();
        // Every row must be a list of exactly `width` values: a 0 every `width` entries, 1 elsewhere.
        for (var i = 0; i < n; i++)
            if ((repetition[i] == 0) != (i % width == 0) || definition[i] != field.MaxDefinitionLevel)
                throw new SoftLabelException($"column '{field.Path}' of '{path}' is not {width} values a row; regenerate the file");
    }
}
