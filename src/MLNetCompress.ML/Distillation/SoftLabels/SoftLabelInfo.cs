using System.Text.Json;
using System.Text.Json.Serialization;

namespace MLNetCompress.ML.Distillation;

/// <summary>How an ensemble of teachers is combined into one distribution.</summary>
public enum SoftLabelCombine
{
    /// <summary>The arithmetic mean of the teachers' distributions: p = (1/M) Σ p_m.</summary>
    Arithmetic,

    /// <summary>The normalized geometric mean: p ∝ exp((1/M) Σ log p_m).</summary>
    Geometric,
}

/// <summary>Which rows of the data a file holds when the data was split into shards: rows
/// [<see cref="FirstRow"/>, <see cref="FirstRow"/> + rows) of <see cref="TotalRows"/>, shard <see cref="Index"/>
/// (0-based) of <see cref="Count"/>.</summary>
/// <param name="Index">The shard, 0 to <paramref name="Count"/> − 1.</param>
/// <param name="Count">The number of shards the data was split into.</param>
/// <param name="FirstRow">Index in the data of the shard's first row.</param>
/// <param name="TotalRows">Rows in the whole data (after any row limit).</param>
public sealed record SoftLabelShardInfo(int Index, int Count, long FirstRow, long TotalRows);

/// <summary>What a soft-label file holds besides its rows: the class count C (to restore a dense vector from the
/// top-k form), the temperature, the row count, the teachers and how they were run. It is the JSON sidecar
/// <c>FILE.json</c> beside every soft-label file, and for Parquet also the file's key-value metadata under
/// <see cref="SoftLabelFile.MetadataKey"/>. See <see cref="SoftLabelFile"/> for the layout.</summary>
public sealed record SoftLabelInfo
{
    /// <summary>The value of <see cref="Format"/>.</summary>
    public const string FormatName = "mlnetcompress.soft-labels";

    /// <summary>The layout version written by this code.</summary>
    public const int CurrentVersion = 1;

    /// <summary>Always <see cref="FormatName"/>; tells a soft-label sidecar from any other JSON.</summary>
    public string Format { get; init; } = FormatName;

    /// <summary>Layout version (1).</summary>
    public int Version { get; init; } = CurrentVersion;

    /// <summary>Number of classes C: the length of the dense soft-label vector.</summary>
    public required int Classes { get; init; }

    /// <summary>The temperature T of softmax(z / T).</summary>
    public required double Temperature { get; init; }

    /// <summary>Rows in the file.</summary>
    public long Rows { get; init; }

    /// <summary>K when the file holds the top-k form (SoftLabelIndices, SoftLabelValues); null for the dense form.</summary>
    public int? TopK { get; init; }

    /// <summary>Length of the Features vector, or null when the file has no Features column.</summary>
    public int? FeatureLength { get; init; }

    /// <summary>True when the Label column holds known labels (otherwise every label is −1).</summary>
    public bool HasLabels { get; init; }

    /// <summary>The teachers' file names, in order.</summary>
    public IReadOnlyList<string> Teachers { get; init; } = [];

    /// <summary>SHA-256 (hex) of each teacher file, in order: a rerun skips a file only when its teachers are the same.</summary>
    public IReadOnlyList<string> TeacherSha256 { get; init; } = [];

    /// <summary>The teacher output the soft labels were computed from.</summary>
    public string OutputName { get; init; } = "";

    /// <summary>How several teachers were combined.</summary>
    public SoftLabelCombine Combine { get; init; }

    /// <summary>The data spec the rows came from, when known.</summary>
    public string? Data { get; init; }

    /// <summary>The rows this file holds when it is a shard (or a chunk of one); null for a whole data set.</summary>
    public SoftLabelShardInfo? Shard { get; init; }

    /// <summary>True when <paramref name="other"/> was made the same way (teachers, output, temperature, combine,
    /// form, features, data): rows from the two may be joined, and a rerun may keep a finished file.</summary>
    public bool SameSettings(SoftLabelInfo other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Classes == other.Classes && Temperature.Equals(other.Temperature) && TopK == other.TopK
            && FeatureLength == other.FeatureLength && HasLabels == other.HasLabels && OutputName == other.OutputName
            && Combine == other.Combine && Data == other.Data
            && Teachers.SequenceEqual(other.Teachers) && TeacherSha256.SequenceEqual(other.TeacherSha256, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>The JSON text of this record (camelCase, enums as strings).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Parses the JSON written by <see cref="ToJson"/>.</summary>
    /// <exception cref="SoftLabelException">The text is not a soft-label description.</exception>
    public static SoftLabelInfo FromJson(string json, string source)
    {
        SoftLabelInfo? info;
        try
        {
            info = JsonSerializer.Deserialize<SoftLabelInfo>(json, JsonOptions);
        }
        catch (JsonException e)
        {
            throw new SoftLabelException($"{source} is not a soft-label description ({e.Message.Split('\n')[0].TrimEnd('.')}); regenerate the file with soft-labels", e);
        }
        if (info is null || info.Format != FormatName)
            throw new SoftLabelException($"{source} is not a soft-label description (format is not '{FormatName}'); regenerate the file with soft-labels");
        if (info.Version > CurrentVersion)
            throw new SoftLabelException($"{source} has soft-label layout version {info.Version}, newer than this tool reads ({CurrentVersion}); update MLNetCompress");
        if (info.Classes < 1 || info.Rows < 0 || info.TopK is < 1 || info.TopK > info.Classes || info.FeatureLength is < 0 || !(info.Temperature > 0))
            throw new SoftLabelException($"{source} describes an impossible soft-label file (classes {info.Classes}, top-k {info.TopK}, temperature {info.Temperature}); regenerate it");
        return info;
    }

    internal static JsonSerializerOptions JsonOptions { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };
}
