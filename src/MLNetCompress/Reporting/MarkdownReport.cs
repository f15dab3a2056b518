using System.Text;

namespace MLNetCompress.Reporting;

/// <summary>The report as Markdown: a summary, the per-layer table, the eval table and the notes.</summary>
internal static class MarkdownReport
{
    public static string Render(CompressionReport r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var md = new StringBuilder();
        md.AppendLine($"# Compression report: {Cell(Path.GetFileName(r.InputPath ?? "model"))} → {Cell(Path.GetFileName(r.OutputPath))}");
        md.AppendLine();
        md.AppendLine("| | |");
        md.AppendLine("| --- | --- |");
        Row(md, "input", Cell(r.InputPath ?? "(bytes)"));
        Row(md, "output", Cell(r.OutputPath));
        Row(md, "bytes before", $"{r.BytesBefore} ({ReportText.Bytes(r.BytesBefore)})");
        Row(md, "bytes after", $"{r.BytesAfter} ({ReportText.Bytes(r.BytesAfter)})");
        Row(md, "compression", $"{ReportText.Ratio(r.CompressionRatio)} smaller");
        Row(md, "passes", Cell(string.Join("; ", r.Passes.Select(p => $"{p.Name}: {(p.Modified ? $"{p.Changes} changes" : "no change")}"))));
        Row(md, "verified", Cell(r.Verification.Summary));
        Row(md, "elapsed", $"{ReportText.Number(r.ElapsedSeconds, "0.0")} s");
        md.AppendLine();

        if (r.Stages.Count > 0)
        {
            md.AppendLine("## Size after each stage");
            md.AppendLine();
            md.AppendLine("| stage | bytes | size | smaller than the original | detail |");
            md.AppendLine("| --- | ---: | ---: | ---: | --- |");
            foreach (var st in r.Stages)
                md.AppendLine($"| {Cell(st.Name)} | {st.Bytes.ToString(System.Globalization.CultureInfo.InvariantCulture)} | {ReportText.Bytes(st.Bytes)} | " +
                              $"{ReportText.Ratio(st.Ratio)} | {Cell(st.Detail ?? "")} |");
            md.AppendLine();
        }

        if (r.Evaluation is { } e)
        {
            md.AppendLine("## Evaluation");
            md.AppendLine();
            md.AppendLine($"On {Cell(e.Data)}, {e.Rows} rows, batches of {e.BatchSize}.");
            md.AppendLine();
            md.AppendLine("| output | mean cosine | min cosine | max abs diff | top-1 agreement | accuracy before | accuracy after |");
            md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (var o in e.Outputs)
                md.AppendLine($"| {Cell(o.Name)} | {ReportText.Fixed(o.MeanCosine)} | {ReportText.Fixed(o.MinCosine)} | {ReportText.Scientific(o.MaxAbsDiff)} | " +
                              $"{ReportText.Percent(o.Top1Agreement)} | {ReportText.Percent(o.AccuracyBefore)} | {ReportText.Percent(o.AccuracyAfter)} |");
            md.AppendLine();
            md.AppendLine("| latency before | latency after | ratio | timed batches |");
            md.AppendLine("| ---: | ---: | ---: | ---: |");
            md.AppendLine($"| {ReportText.Ms(e.LatencyBeforeMs)} | {ReportText.Ms(e.LatencyAfterMs)} | {ReportText.Ratio(e.LatencyRatio)} | {e.LatencySamples} |");
            md.AppendLine();
        }

        md.AppendLine("## Layers");
        md.AppendLine();
        if (r.Layers.Count == 0) md.AppendLine("No weight was changed.");
        else
        {
            md.AppendLine("| weight | op | shape | storage after | bytes before | bytes after | params | sparsity | clusters | bits | bits/weight | rank | max abs error | rel. error |");
            md.AppendLine("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (var l in r.Layers)
                md.AppendLine($"| {Cell(l.Weight)} | {Cell(l.OpType)} | {ReportText.Shape(l.Shape)} | {Cell(l.StorageAfter)} | {ReportText.Bytes(l.BytesBefore)} | " +
                              $"{ReportText.Bytes(l.BytesAfter)} | {ReportText.Count(l.Params)}{(l.ParamsAfter != l.Params ? " → " + ReportText.Count(l.ParamsAfter) : "")} | " +
                              $"{ReportText.Percent(l.SparsityAfter)} | {ReportText.Int(l.Clusters)} | {ReportText.Int(l.Bits)} | {ReportText.Number(l.BitsPerWeight, "0.##")} | " +
                              $"{ReportText.Ranks(l.Ranks)} | {ReportText.Scientific(l.MaxAbsError)} | {ReportText.Scientific(l.RelativeError)} |");
            md.AppendLine($"| **{r.Layers.Count} weights** | | | | **{ReportText.Bytes(r.Layers.Sum(l => l.BytesBefore))}** | **{ReportText.Bytes(r.Layers.Sum(l => l.BytesAfter))}** | | | | | | | | |");
        }
        md.AppendLine();

        var timed = r.Layers.Where(l => l.FloatMs is not null && l.CompressedMs is not null).ToList();
        if (timed.Count > 0)
        {
            md.AppendLine("## Layer speed (each layer alone on the CPU that compressed it)");
            md.AppendLine();
            md.AppendLine("| weight | op | float | compressed, in place | speed-up |");
            md.AppendLine("| --- | --- | ---: | ---: | ---: |");
            foreach (var l in timed)
                md.AppendLine($"| {Cell(l.Weight)} | {Cell(l.OpType)} | {ReportText.Ms(l.FloatMs!.Value)} | {ReportText.Ms(l.CompressedMs!.Value)} | " +
                              $"{ReportText.Ratio(l.FloatMs.Value / l.CompressedMs.Value)} |");
            md.AppendLine();
        }

        var skipped = r.Passes.SelectMany(p => p.Skipped.Select(s => $"{p.Name}: {s}")).ToList();
        if (skipped.Count > 0 || r.Notes.Count > 0)
        {
            md.AppendLine("## Notes");
            md.AppendLine();
            foreach (var line in skipped.Concat(r.Notes)) md.AppendLine($"- {Cell(line)}");
            md.AppendLine();
        }
        return md.ToString();
    }

    private static void Row(StringBuilder md, string key, string value) => md.AppendLine($"| {key} | {value} |");

    /// <summary>
    /// Text from the model (names, paths) made inert in a table cell: one line, Markdown and HTML syntax
    /// backslash-escaped or entity-encoded so a name can neither break the table nor inject markup into a renderer.
    /// </summary>
    internal static string Cell(string text)
    {
        var sb = new StringBuilder(text.Length + 8);
        foreach (char c in text)
        {
            switch (c)
            {
                case '<': sb.Append("&lt;"); break;
                case '>': sb.Append("&gt;"); break;
                case '&': sb.Append("&amp;"); break;
                case '\r' or '\n' or '\t': sb.Append(' '); break;
                case '|' or '\\' or '`' or '*' or '_' or '[' or ']' or '(' or ')' or '#' or '!' or '~' or '{' or '}':
                    sb.Append('\\').Append(c);
                    break;
                default:
                    if (!char.IsControl(c)) sb.Append(c);
                    break;
            }
        }
        return sb.ToString();
    }
}
