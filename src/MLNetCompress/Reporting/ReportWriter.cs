using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace MLNetCompress.Reporting;

/// <summary>Writes a <see cref="CompressionReport"/> as JSON, Markdown and one self-contained HTML page.</summary>
public static class ReportWriter
{
    /// <summary>The JSON file <see cref="WriteAll"/> writes.</summary>
    public const string JsonFileName = "report.json";

    /// <summary>The Markdown file <see cref="WriteAll"/> writes.</summary>
    public const string MarkdownFileName = "report.md";

    /// <summary>The HTML file <see cref="WriteAll"/> writes.</summary>
    public const string HtmlFileName = "report.html";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        // NaN (e.g. a cosine over non-finite outputs) is written as "NaN" rather than failing the whole report.
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>The report as indented JSON with the field names fixed by <see cref="JsonPropertyNameAttribute"/>.</summary>
    public static string ToJson(CompressionReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        return JsonSerializer.Serialize(report, Json);
    }

    /// <summary>Reads a report written by <see cref="ToJson"/>.</summary>
    /// <exception cref="JsonException">The text is not a report.</exception>
    public static CompressionReport FromJson(string json) =>
        JsonSerializer.Deserialize<CompressionReport>(json, Json) ?? throw new JsonException("the JSON is null, not a report");

    /// <summary>The report as Markdown tables.</summary>
    public static string ToMarkdown(CompressionReport report) => MarkdownReport.Render(report);

    /// <summary>The report as one HTML page with inline SVG plots and no external resources.</summary>
    public static string ToHtml(CompressionReport report) => HtmlReport.Render(report);

    /// <summary>
    /// Writes <c>report.json</c>, <c>report.md</c> and <c>report.html</c> into <paramref name="directory"/> (created if
    /// missing). Each file is written beside its final name and moved over it, so a reader never sees half a file.
    /// </summary>
    /// <returns>The three paths, in that order.</returns>
    /// <exception cref="IOException">The folder or a file could not be written.</exception>
    public static IReadOnlyList<string> WriteAll(CompressionReport report, string directory)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        if (File.Exists(directory)) throw new IOException($"'{directory}' is a file; the report needs a folder.");
        Directory.CreateDirectory(directory);
        // Render everything first: a failure then leaves no file half-updated.
        (string Name, string Text)[] files =
        [
            (JsonFileName, ToJson(report)),
            (MarkdownFileName, ToMarkdown(report)),
            (HtmlFileName, ToHtml(report)),
        ];
        var paths = new List<string>(files.Length);
        foreach (var (name, text) in files)
        {
            string path = Path.GetFullPath(Path.Combine(directory, name));
            WriteAtomically(path, text);
            paths.Add(path);
        }
        return paths;
    }

    private static void WriteAtomically(string path, string text)
    {
        string temp = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            File.WriteAllText(temp, text, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}
