using System.Text;
using Microsoft.ML;

namespace MLNetCompress.ML.Distillation;

/// <summary>The file formats a soft-label file can have, chosen by the file's extension.</summary>
public enum SoftLabelFileFormat
{
    /// <summary>ML.NET binary data view (<c>.idv</c>), written by <c>mlContext.Data.SaveAsBinary</c>.</summary>
    Idv,

    /// <summary>Text (<c>.csv</c>): a header line, comma separated, invariant culture, floats in shortest round-trip form.</summary>
    Csv,

    /// <summary>Apache Parquet (<c>.parquet</c>), written with Parquet.Net; vectors are LIST columns.</summary>
    Parquet,
}

/// <summary>
/// Soft-label files: reading them back as an ML.NET <see cref="IDataView"/>, and their description.
/// <para><b>Layout (version 1).</b> One row per data row, in data order. Columns:</para>
/// <list type="table">
/// <item><term><c>Id</c></term><description>text: the row's id from the data feed (e.g. <c>test#17</c>, a file name).</description></item>
/// <item><term><c>Label</c></term><description>Int32: the hard label, −1 when the data has none.</description></item>
/// <item><term><c>Features</c></term><description>float vector of length F: the teacher's single float input, flattened
/// row-major; absent when turned off or when the teacher's input is not a single float tensor.</description></item>
/// <item><term><c>SoftLabel</c></term><description>dense form: float vector of length C, softmax(z / T) (combined over
/// the teachers), summing to 1.</description></item>
/// <item><term><c>SoftLabelIndices</c>, <c>SoftLabelValues</c></term><description>top-k form, instead of <c>SoftLabel</c>:
/// Int32 vector and float vector of length K, the K most probable classes, most probable first (ties: lower class
/// first), and their probabilities (not renormalized).</description></item>
/// </list>
/// <para>Per format: <b>.idv</b> is ML.NET's binary format with those column types (Id is ML.NET text; vectors have
/// known sizes). <b>.csv</b> has a header line <c>Id,Label,Features_0..Features_{F-1},SoftLabel_0..SoftLabel_{C-1}</c>
/// (top-k: <c>SoftLabelIndices_0..</c>, <c>SoftLabelValues_0..</c>), commas, invariant culture, floats in shortest
/// round-trip form, the Id quoted as RFC 4180 when it holds a comma, quote or line break. <b>.parquet</b> has Id as a
/// required UTF-8 string, Label as a required int32, and each vector as a LIST of required float / int32 values;
/// one row group per 16,384 rows or fewer.</para>
/// <para><b>Description.</b> Every file has a JSON sidecar <c>FILE.json</c> (e.g. <c>out.parquet.json</c>), a
/// <see cref="SoftLabelInfo"/>: format <c>mlnetcompress.soft-labels</c>, version, classes C, temperature T, rows,
/// topK (null: dense), featureLength (null: no Features), hasLabels, teachers and their SHA-256, outputName,
/// combine, data (the spec) and shard (index, count, firstRow, totalRows; null for a whole data set). A Parquet file
/// also carries the same JSON in its key-value metadata under <see cref="MetadataKey"/>, so it stands alone.</para>
/// <para><b>Completeness.</b> The data file is written to a temporary file in the same folder and moved into place,
/// then its sidecar the same way: a file with a readable description is complete. A run of more than
/// <see cref="SoftLabelOptions.CheckpointRows"/> rows first writes parts <c>OUT.EXT.parts/part-k-of-K.EXT</c> (each
/// complete in the same sense, described as shard k of K of the run's rows), joins them into OUT.EXT and removes the
/// folder; a rerun keeps the finished parts. Shards of <c>--shard i/n</c> are <c>OUT.shard-i-of-n.EXT</c>.</para>
/// <para><b>Reading.</b> <see cref="Load"/> gives Id, Label, Features (when present) and SoftLabel as a dense
/// vector of length C for every format and both forms. From the top-k form, the classes not stored share the
/// remaining mass max(0, 1 − Σ values) evenly.</para>
/// </summary>
public static class SoftLabelFile
{
    /// <summary>The row id column (text).</summary>
    public const string IdColumn = "Id";

    /// <summary>The hard label column (Int32, −1 when unknown).</summary>
    public const string LabelColumn = "Label";

    /// <summary>The teacher input column (float vector).</summary>
    public const string FeaturesColumn = "Features";

    /// <summary>The dense soft-label column (float vector of length C).</summary>
    public const string SoftLabelColumn = "SoftLabel";

    /// <summary>The top-k class index column (Int32 vector of length K).</summary>
    public const string IndicesColumn = "SoftLabelIndices";

    /// <summary>The top-k probability column (float vector of length K).</summary>
    public const string ValuesColumn = "SoftLabelValues";

    /// <summary>Parquet key-value metadata key holding the <see cref="SoftLabelInfo"/> JSON.</summary>
    public const string MetadataKey = "mlnetcompress.soft-labels";

    /// <summary>The extension of the JSON sidecar, appended to the file's own name.</summary>
    public const string SidecarExtension = ".json";

    /// <summary>The format of <paramref name="path"/> from its extension (.idv, .csv, .parquet).</summary>
    /// <exception cref="SoftLabelException">Another extension.</exception>
    public static SoftLabelFileFormat FormatOf(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".idv" => SoftLabelFileFormat.Idv,
            ".csv" => SoftLabelFileFormat.Csv,
            ".parquet" => SoftLabelFileFormat.Parquet,
            var ext => throw new SoftLabelException($"'{Path.GetFileName(path)}' has extension '{ext}'; a soft-label file ends in .idv, .csv or .parquet"),
        };
    }

    /// <summary>The sidecar path of <paramref name="path"/>: the file name with <c>.json</c> appended.</summary>
    public static string SidecarPath(string path) => path + SidecarExtension;

    /// <summary>The description of a soft-label file: C, temperature, rows, teachers, form.</summary>
    /// <exception cref="SoftLabelException">The file or its description is missing or unreadable.</exception>
    public static SoftLabelInfo ReadInfo(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var format = FormatOf(path);
        if (!File.Exists(path)) throw new SoftLabelException($"soft-label file '{path}' does not exist; check the path");
        if (format == SoftLabelFileFormat.Parquet && ParquetSoftLabels.ReadEmbeddedInfo(path) is { } embedded) return embedded;
        var sidecar = SidecarPath(path);
        if (!File.Exists(sidecar))
            throw new SoftLabelException($"soft-label file '{path}' has no description '{Path.GetFileName(sidecar)}' beside it (an unfinished write?); regenerate it with soft-labels");
        return SoftLabelInfo.FromJson(File.ReadAllText(sidecar, Encoding.UTF8), sidecar);
    }

    /// <summary>True when <paramref name="path"/> is a complete soft-label file (it exists and its description reads).</summary>
    public static bool IsComplete(string path, out SoftLabelInfo? info)
    {
        info = null;
        if (!File.Exists(path)) return false;
        try
        {
            info = ReadInfo(path);
            return true;
        }
        catch (SoftLabelException)
        {
            return false;
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Reads a soft-label file (.idv, .csv or .parquet; dense or top-k) as a data view with the columns
    /// <c>Id</c> (text), <c>Label</c> (Int32, −1 when unknown), <c>Features</c> (float vector of known size, when the
    /// file has features) and <c>SoftLabel</c> (dense float vector of known size C). Rows stream from the file on each
    /// cursor; nothing is held in memory.</summary>
    /// <param name="ml">The ML.NET context.</param>
    /// <param name="path">The soft-label file.</param>
    /// <exception cref="SoftLabelException">The file is missing, is not a soft-label file, or is damaged.</exception>
    public static IDataView Load(MLContext ml, string path)
    {
        ArgumentNullException.ThrowIfNull(ml);
        var info = ReadInfo(path);
        var format = FormatOf(path);
        // ML.NET's own reader serves the dense binary form: parallel cursors and all.
        if (format == SoftLabelFileFormat.Idv && info.TopK is null) return IdvSoftLabels.LoadDense(ml, path, info);
        return new SoftLabelDataView(() => OpenBlocks(path, info), info, densify: true);
    }

    /// <summary>The rows of a file, in its own form (dense or top-k), in blocks.</summary>
    internal static IEnumerable<SoftLabelBlock> OpenBlocks(string path, SoftLabelInfo info) => FormatOf(path) switch
    {
        SoftLabelFileFormat.Parquet => ParquetSoftLabels.Read(path, info),
        SoftLabelFileFormat.Csv => CsvSoftLabels.Read(path, info),
        _ => IdvSoftLabels.Read(path, info),
    };

    /// <summary>Writes <paramref name="blocks"/> to <paramref name="path"/> atomically (a temporary file in the same
    /// folder, moved into place) and then its sidecar; returns the description written (the template with the row
    /// count). A failed or cancelled write leaves no file behind and removes any earlier description first.</summary>
    internal static SoftLabelInfo Write(string path, SoftLabelInfo template, IEnumerable<SoftLabelBlock> blocks, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        var format = FormatOf(path);
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var tag = Guid.NewGuid().ToString("N")[..8];
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{tag}.tmp");
        var sidecarTmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{tag}.json.tmp");
        try
        {
            var counted = CountRows(blocks, template, cancellationToken);
            var rows = format switch
            {
                SoftLabelFileFormat.Parquet => ParquetSoftLabels.Write(tmp, template, counted),
                SoftLabelFileFormat.Csv => CsvSoftLabels.Write(tmp, template, counted),
                _ => IdvSoftLabels.Write(tmp, template, counted),
            };
            var info = template with { Rows = rows };
            File.WriteAllText(sidecarTmp, info.ToJson(), new UTF8Encoding(false));
            // The old description goes first: data without a description reads as unfinished, never as the old run.
            File.Delete(SidecarPath(full));
            File.Move(tmp, full, overwrite: true);
            File.Move(sidecarTmp, SidecarPath(full), overwrite: true);
            return info;
        }
        finally
        {
            TryDelete(tmp);
            TryDelete(sidecarTmp);
        }
    }

    /// <summary>Deletes a soft-label file and its sidecar, when present.</summary>
    internal static void Delete(string path)
    {
        File.Delete(SidecarPath(path));
        File.Delete(path);
    }

    // Checks each block against the layout and for cancellation as it streams to a writer.
    private static IEnumerable<SoftLabelBlock> CountRows(IEnumerable<SoftLabelBlock> blocks, SoftLabelInfo layout, CancellationToken ct)
    {
        foreach (var b in blocks)
        {
            ct.ThrowIfCancellationRequested();
            if (b.Classes != layout.Classes || b.TopK != layout.TopK || b.FeatureLength != layout.FeatureLength)
                throw new InvalidOperationException($"a block with C={b.Classes}, K={b.TopK}, F={b.FeatureLength} does not fit the layout C={layout.Classes}, K={layout.TopK}, F={layout.FeatureLength}");
            yield return b;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            if (File.Exists(path)) File.Delete(path);
        }
        catch (IOException)
        {
            // A leftover temporary file is harmless; the next run writes under a new name.
        }
    }
}
