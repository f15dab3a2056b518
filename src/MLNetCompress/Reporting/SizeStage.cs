using System.Text.Json.Serialization;

namespace MLNetCompress.Reporting;

/// <summary>
/// One row of the report's size table: the model's size after a stage of the pipeline (the original file, each
/// recipe step, the written file, the packed container) and how many times smaller that is than the original.
/// </summary>
public sealed record SizeStage
{
    /// <summary>What the stage is, e.g. <c>original</c>, <c>step 2: cluster</c>, <c>pack (.mlcz)</c>.</summary>
    [JsonPropertyName("stage")]
    public required string Name { get; init; }

    /// <summary>The passes the stage ran, or the file it measured (text; may come from a path).</summary>
    [JsonPropertyName("detail")]
    public string? Detail { get; init; }

    /// <summary>The model's size after the stage, in bytes.</summary>
    [JsonPropertyName("bytes")]
    public required long Bytes { get; init; }

    /// <summary>Original bytes over <see cref="Bytes"/> (4 means four times smaller).</summary>
    [JsonPropertyName("ratio")]
    public required double Ratio { get; init; }

    /// <summary>The stage name of the original model, always the first row.</summary>
    public const string OriginalName = "original";

    /// <summary>The stage name of the model file as written.</summary>
    public const string WrittenName = "written";

    /// <summary>The stage name of the packed container.</summary>
    public const string PackName = "pack (.mlcz)";

    /// <summary>A row of <paramref name="bytes"/> with its ratio to <paramref name="originalBytes"/>.</summary>
    public static SizeStage Of(string name, long bytes, long originalBytes, string? detail = null) => new()
    {
        Name = name,
        Detail = detail,
        Bytes = bytes,
        Ratio = bytes <= 0 ? double.NaN : (double)originalBytes / bytes,
    };

    /// <summary>
    /// <paramref name="stages"/> with the packed container as the last row (its ratio to the first row, the original);
    /// a table without rows starts from <paramref name="originalBytes"/>.
    /// </summary>
    /// <param name="stages">The rows so far (the first is the original), or empty.</param>
    /// <param name="originalBytes">The original's size, used when <paramref name="stages"/> is empty.</param>
    /// <param name="packedBytes">The container's size.</param>
    /// <param name="packedPath">Where the container was written, or null.</param>
    public static IReadOnlyList<SizeStage> WithPack(IReadOnlyList<SizeStage> stages, long originalBytes, long packedBytes, string? packedPath)
    {
        ArgumentNullException.ThrowIfNull(stages);
        long original = stages.Count > 0 ? stages[0].Bytes : originalBytes;
        var rows = stages.Count > 0 ? stages.ToList() : [Of(OriginalName, originalBytes, originalBytes)];
        rows.Add(Of(PackName, packedBytes, original, packedPath is null ? null : Path.GetFileName(packedPath)));
        return rows;
    }
}
