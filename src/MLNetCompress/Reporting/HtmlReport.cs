using System.Text;
using static MLNetCompress.Reporting.SvgPlots;

namespace MLNetCompress.Reporting;

/// <summary>
/// The report as one self-contained HTML page: summary and eval tables, and inline SVG plots of bytes, structure
/// (sparsity, clusters, bits, rank) and error per layer and of each weight's histogram before and after. Nothing
/// is fetched: no external script, style sheet or font. The one inline script only measures the drawn plots and
/// writes the sizes into <c>#render-check</c>, so a headless browser can confirm they rendered.
/// </summary>
internal static class HtmlReport
{
    private const string Style = """
        body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; max-width: 1100px; }
        h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
        table { border-collapse: collapse; margin: 8px 0; font-size: 0.9em; }
        th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
        td.n { text-align: right; font-variant-numeric: tabular-nums; }
        th { background: #f4f6f8; }
        .plot text { font: 11px sans-serif; fill: #222; } .plot text.title { font-weight: bold; }
        .plot text.value, .plot text.axis { fill: #555; }
        .histograms { display: flex; flex-wrap: wrap; gap: 8px; }
        .note { color: #666; font-size: 0.9em; }
        .wide { overflow-x: auto; }
        """;

    private const string RenderCheck = """
        (function () {
          var out = [];
          document.querySelectorAll('svg.plot').forEach(function (svg) {
            var box = svg.getBoundingClientRect(), marks = svg.querySelectorAll('.mark'), drawn = 0;
            marks.forEach(function (m) { var b = m.getBBox(); if (b.width > 0 && b.height > 0) drawn++; });
            out.push({ id: svg.id, width: box.width, height: box.height, marks: marks.length, drawn: drawn });
          });
          document.getElementById('render-check').textContent = JSON.stringify(out);
        })();
        """;

    public static string Render(CompressionReport r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var h = new StringBuilder();
        string title = $"Compression report: {Path.GetFileName(r.InputPath ?? "model")} → {Path.GetFileName(r.OutputPath)}";
        h.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
        // No resource may be fetched, whatever a model's names contain.
        h.Append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">");
        h.Append("<title>").Append(E(title)).Append("</title><style>").Append(Style).Append("</style></head><body>\n");
        h.Append("<h1>").Append(E(title)).Append("</h1>\n");

        Summary(h, r);
        Stages(h, r);
        if (r.Evaluation is { } e) Evaluation(h, e);
        Plots(h, r);
        LayerTable(h, r);
        Notes(h, r);

        h.Append("<pre id=\"render-check\" hidden></pre>\n<script>").Append(RenderCheck).Append("</script>\n</body></html>\n");
        return h.ToString();
    }

    private static void Summary(StringBuilder h, CompressionReport r)
    {
        h.Append("<h2>Summary</h2><table>");
        Field(h, "input", r.InputPath ?? "(bytes)");
        Field(h, "output", r.OutputPath);
        Field(h, "bytes before", $"{r.BytesBefore} ({ReportText.Bytes(r.BytesBefore)})");
        Field(h, "bytes after", $"{r.BytesAfter} ({ReportText.Bytes(r.BytesAfter)})");
        Field(h, "compression", $"{ReportText.Ratio(r.CompressionRatio)} smaller");
        Field(h, "passes", string.Join("; ", r.Passes.Select(p => $"{p.Name}: {(p.Modified ? $"{p.Changes} changes" : "no change")}")));
        Field(h, "verified", r.Verification.Summary);
        Field(h, "elapsed", $"{ReportText.Number(r.ElapsedSeconds, "0.0")} s");
        h.Append("</table>\n");
    }

    private static void Stages(StringBuilder h, CompressionReport r)
    {
        if (r.Stages.Count == 0) return;
        h.Append("<h2>Size after each stage</h2><table id=\"stage-table\"><tr><th>stage</th><th>bytes</th><th>size</th><th>smaller than the original</th><th>detail</th></tr>");
        foreach (var st in r.Stages)
        {
            h.Append("<tr><td>").Append(E(st.Name)).Append("</td>");
            Num(h, st.Bytes.ToString(System.Globalization.CultureInfo.InvariantCulture)); Num(h, ReportText.Bytes(st.Bytes)); Num(h, ReportText.Ratio(st.Ratio));
            h.Append("<td>").Append(E(st.Detail ?? "")).Append("</td></tr>");
        }
        h.Append("</table>\n");
        h.Append(Bars("plot-stages", "Bytes after each stage", r.Stages.Select(st => st.Name).ToList(),
            [new BarSeries("bytes", AfterColor, r.Stages.Select(st => (double?)st.Bytes).ToList())],
            v => ReportText.Bytes((long)v))).Append('\n');
    }

    private static void Evaluation(StringBuilder h, EvaluationReport e)
    {
        h.Append("<h2>Evaluation</h2><p>On ").Append(E(e.Data)).Append($", {e.Rows} rows, batches of {e.BatchSize}.</p>");
        h.Append("<table id=\"eval-table\"><tr><th>output</th><th>mean cosine</th><th>min cosine</th><th>max abs diff</th><th>top-1 agreement</th><th>accuracy before</th><th>accuracy after</th></tr>");
        foreach (var o in e.Outputs)
        {
            h.Append("<tr><td>").Append(E(o.Name)).Append("</td>");
            Num(h, ReportText.Fixed(o.MeanCosine)); Num(h, ReportText.Fixed(o.MinCosine)); Num(h, ReportText.Scientific(o.MaxAbsDiff));
            Num(h, ReportText.Percent(o.Top1Agreement)); Num(h, ReportText.Percent(o.AccuracyBefore)); Num(h, ReportText.Percent(o.AccuracyAfter));
            h.Append("</tr>");
        }
        h.Append("</table><table><tr><th>latency before</th><th>latency after</th><th>ratio (after / before)</th><th>timed batches</th></tr><tr>");
        Num(h, ReportText.Ms(e.LatencyBeforeMs)); Num(h, ReportText.Ms(e.LatencyAfterMs)); Num(h, ReportText.Ratio(e.LatencyRatio)); Num(h, e.LatencySamples.ToString(System.Globalization.CultureInfo.InvariantCulture));
        h.Append("</tr></table>\n");
    }

    private static void Plots(StringBuilder h, CompressionReport r)
    {
        if (r.Layers.Count == 0) return;
        var names = r.Layers.Select(l => l.Weight).ToList();
        h.Append("<h2>Bytes per layer</h2>\n");
        h.Append(Bars("plot-bytes", "Bytes per layer", names,
        [
            new BarSeries("before", BeforeColor, r.Layers.Select(l => (double?)l.BytesBefore).ToList()),
            new BarSeries("after", AfterColor, r.Layers.Select(l => (double?)l.BytesAfter).ToList()),
        ], v => ReportText.Bytes((long)v)));

        h.Append("\n<h2>Structure per layer</h2>\n");
        Metric(h, "plot-sparsity", "Sparsity (share of zeros)", names,
        [
            new BarSeries("before", BeforeColor, r.Layers.Select(l => l.SparsityBefore).ToList()),
            new BarSeries("after", AfterColor, r.Layers.Select(l => l.SparsityAfter).ToList()),
        ], v => ReportText.Percent(v), fixedMax: 1, when: r.Layers.Any(l => l.SparsityAfter > 0 || l.SparsityBefore > 0), absent: "no layer has zeros");
        Metric(h, "plot-clusters", "Clusters (codebook centroids)", names,
            [new BarSeries("clusters", AfterColor, r.Layers.Select(l => (double?)l.Clusters).ToList())],
            v => ReportText.Number(v), when: r.Layers.Any(l => l.Clusters is not null), absent: "no layer is clustered");
        Metric(h, "plot-bits", "Bits per stored code and per weight", names,
        [
            new BarSeries("bits per code", BeforeColor, r.Layers.Select(l => (double?)l.Bits).ToList()),
            new BarSeries("bits per weight (all storage)", AfterColor, r.Layers.Select(l => (double?)l.BitsPerWeight).ToList()),
        ], v => ReportText.Number(v, "0.##"), when: true, absent: "");
        Metric(h, "plot-rank", "Rank of low-rank factors", names,
            [new BarSeries("rank", AfterColor, r.Layers.Select(l => l.Ranks is { Count: > 0 } k ? (double?)k.Max() : null).ToList())],
            v => ReportText.Number(v), when: r.Layers.Any(l => l.Ranks is not null), absent: "no layer is factorized");
        Metric(h, "plot-speed", "Layer speed alone, float and as compressed (ms, on the CPU that compressed it)", names,
        [
            new BarSeries("float", BeforeColor, r.Layers.Select(l => l.FloatMs).ToList()),
            new BarSeries("compressed", AfterColor, r.Layers.Select(l => l.CompressedMs).ToList()),
        ], v => ReportText.Ms(v), when: r.Layers.Any(l => l.FloatMs is not null), absent: "no layer was timed");

        h.Append("\n<h2>Per-layer error</h2>\n");
        bool anyRelative = r.Layers.Any(l => l.RelativeError is not null);
        if (anyRelative)
            h.Append(Bars("plot-error", "Relative error ‖Δw‖/‖w‖ per layer", names,
                [new BarSeries("relative error", AfterColor, r.Layers.Select(l => l.RelativeError).ToList())], v => ReportText.Scientific(v), log: true));
        h.Append(Bars("plot-maxerror", "Largest |Δw| per layer", names,
            [new BarSeries("max abs error", BeforeColor, r.Layers.Select(l => (double?)l.MaxAbsError).ToList())], v => ReportText.Scientific(v), log: true));

        var histograms = r.Layers.Select((l, k) => (l, k)).Where(x => x.l.Histogram is not null).ToList();
        h.Append("\n<h2>Weight histograms</h2>\n<p class=\"note\">Grey: before; blue: after (same bins; counts on a log(1 + n) scale).</p><div class=\"histograms\">");
        foreach (var (l, k) in histograms) h.Append(Histogram($"hist-{k}", l.Weight, l.Histogram!));
        h.Append("</div>\n");
        if (histograms.Count == 0) h.Append("<p class=\"note\">No weight's values could be read.</p>");
    }

    private static void Metric(StringBuilder h, string id, string title, IReadOnlyList<string> names, IReadOnlyList<BarSeries> series,
        Func<double, string> format, bool when, string absent, double? fixedMax = null)
    {
        if (!when)
        {
            h.Append("<p class=\"note\">").Append(E(title)).Append(": ").Append(E(absent)).Append(".</p>\n");
            return;
        }
        h.Append("<h3>").Append(E(title)).Append("</h3>").Append(Bars(id, title, names, series, format, fixedMax: fixedMax)).Append('\n');
    }

    private static void LayerTable(StringBuilder h, CompressionReport r)
    {
        h.Append("<h2>Layers</h2>");
        if (r.Layers.Count == 0) { h.Append("<p>No weight was changed.</p>"); return; }
        h.Append("<div class=\"wide\"><table id=\"layer-table\"><tr><th>weight</th><th>op</th><th>shape</th><th>storage before</th><th>storage after</th><th>bytes before</th><th>bytes after</th>" +
                 "<th>params</th><th>sparsity</th><th>clusters</th><th>bits</th><th>bits/weight</th><th>rank</th><th>max abs error</th><th>rel. error</th>" +
                 "<th>float ms</th><th>compressed ms</th></tr>");
        foreach (var l in r.Layers)
        {
            h.Append("<tr><td>").Append(E(l.Weight)).Append("</td><td>").Append(E(l.OpType)).Append("</td><td>").Append(E(ReportText.Shape(l.Shape)))
             .Append("</td><td>").Append(E(l.StorageBefore)).Append("</td><td>").Append(E(string.Join(" → ", l.Steps))).Append("</td>");
            Num(h, ReportText.Bytes(l.BytesBefore)); Num(h, ReportText.Bytes(l.BytesAfter));
            Num(h, ReportText.Count(l.Params) + (l.ParamsAfter != l.Params ? " → " + ReportText.Count(l.ParamsAfter) : ""));
            Num(h, ReportText.Percent(l.SparsityAfter)); Num(h, ReportText.Int(l.Clusters)); Num(h, ReportText.Int(l.Bits));
            Num(h, ReportText.Number(l.BitsPerWeight, "0.##")); Num(h, ReportText.Ranks(l.Ranks));
            Num(h, ReportText.Scientific(l.MaxAbsError)); Num(h, ReportText.Scientific(l.RelativeError));
            Num(h, l.FloatMs is double f ? ReportText.Ms(f) : "–"); Num(h, l.CompressedMs is double c ? ReportText.Ms(c) : "–");
            h.Append("</tr>");
        }
        h.Append("</table></div>\n");
    }

    private static void Notes(StringBuilder h, CompressionReport r)
    {
        var lines = r.Passes.SelectMany(p => p.Skipped.Select(s => $"{p.Name}: {s}")).Concat(r.Notes).ToList();
        if (lines.Count == 0) return;
        h.Append("<h2>Notes</h2><ul>");
        foreach (var line in lines) h.Append("<li>").Append(E(line)).Append("</li>");
        h.Append("</ul>\n");
    }

    private static void Field(StringBuilder h, string key, string value) =>
        h.Append("<tr><th>").Append(E(key)).Append("</th><td>").Append(E(value)).Append("</td></tr>");

    private static void Num(StringBuilder h, string value) => h.Append("<td class=\"n\">").Append(E(value)).Append("</td>");
}
