using System.Globalization;
using System.Net;
using System.Text;

namespace MLNetCompress.Reporting;

/// <summary>One series of a bar chart: a name for the legend, a colour, and a value per row (null: no bar).</summary>
internal sealed record BarSeries(string Name, string Color, IReadOnlyList<double?> Values);

/// <summary>
/// Hand-written inline SVG plots for the HTML report: no script or font is needed to draw them. Every drawn value is
/// an element of class <c>mark</c>, so a test can measure that the plots rendered. All text is HTML-encoded.
/// </summary>
internal static class SvgPlots
{
    public const string BeforeColor = "#9aa5b1";
    public const string AfterColor = "#1f6fb4";

    private const int Width = 760;
    private const int LabelWidth = 230;
    private const int ValueWidth = 90;
    private const int RowHeight = 18;
    private const int Top = 28;

    /// <summary>Horizontal bars, one group per row (layer), one bar per series; <paramref name="log"/> uses a log10 axis.</summary>
    public static string Bars(string id, string title, IReadOnlyList<string> rows, IReadOnlyList<BarSeries> series, Func<double, string> format,
        bool log = false, double? fixedMax = null)
    {
        int groupHeight = RowHeight * series.Count + 6;
        int height = Top + groupHeight * rows.Count + 26;
        double plotWidth = Width - LabelWidth - ValueWidth;
        var values = series.SelectMany(s => s.Values).OfType<double>().Where(double.IsFinite).ToList();
        double max = fixedMax ?? (values.Count == 0 ? 1 : values.Max());
        double minPositive = values.Where(v => v > 0).DefaultIfEmpty(1).Min();
        double logLow = Math.Floor(Math.Log10(minPositive)), logHigh = Math.Ceiling(Math.Log10(Math.Max(max, minPositive)));
        if (logHigh <= logLow) logHigh = logLow + 1;
        if (!(max > 0)) max = 1;
        double Scale(double v)
        {
            if (!double.IsFinite(v) || v <= 0) return 0;
            if (!log) return plotWidth * Math.Min(v, max) / max;
            // A bar of the axis' lowest decade still shows a sliver, so a tiny value differs from no value.
            return Math.Max(2, plotWidth * (Math.Log10(v) - logLow) / (logHigh - logLow));
        }

        var svg = Open(id, title, height);
        Legend(svg, series.Select(s => (s.Name, s.Color)).ToList(), LabelWidth);
        for (int r = 0; r < rows.Count; r++)
        {
            double y0 = Top + r * groupHeight;
            Text(svg, LabelWidth - 6, y0 + groupHeight / 2.0 + 4, Shorten(rows[r], 34), "end", rows[r]);
            for (int s = 0; s < series.Count; s++)
            {
                double y = y0 + s * RowHeight;
                double? v = series[s].Values[r];
                if (v is not double value) continue;
                double w = Scale(value);
                // A zero has no bar, only its value: every mark drawn is a visible bar.
                if (w > 0)
                    svg.Append(CultureInfo.InvariantCulture,
                        $"<rect class=\"mark\" x=\"{LabelWidth}\" y=\"{F(y + 2)}\" width=\"{F(w)}\" height=\"{RowHeight - 4}\" fill=\"{series[s].Color}\"><title>{E(rows[r])}: {E(series[s].Name)} {E(format(value))}</title></rect>");
                Text(svg, LabelWidth + w + 4, y + RowHeight - 5, format(value), "start", null, "value");
            }
        }
        // Axis: the baseline and its end value.
        double axisY = Top + groupHeight * rows.Count + 4;
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{LabelWidth}\" y1=\"{Top - 4}\" x2=\"{LabelWidth}\" y2=\"{F(axisY)}\" stroke=\"#555\"/>");
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{LabelWidth}\" y1=\"{F(axisY)}\" x2=\"{F(LabelWidth + plotWidth)}\" y2=\"{F(axisY)}\" stroke=\"#555\"/>");
        Text(svg, LabelWidth, axisY + 16, log ? format(Math.Pow(10, logLow)) : format(0), "start", null, "axis");
        Text(svg, LabelWidth + plotWidth, axisY + 16, (log ? format(Math.Pow(10, logHigh)) : format(max)) + (log ? " (log scale)" : ""), "end", null, "axis");
        return Close(svg);
    }

    /// <summary>A histogram of one weight: bins before as grey bars, after as blue bars laid over them; counts on a log(1 + n) axis.</summary>
    public static string Histogram(string id, string title, WeightHistogram h)
    {
        const int w = 360, height = 170, left = 8, right = 8, top = 24, bottom = 30;
        double plotW = w - left - right, plotH = height - top - bottom;
        double peak = Math.Log(1 + Math.Max(h.Before.DefaultIfEmpty(0).Max(), h.After?.DefaultIfEmpty(0).Max() ?? 0));
        if (peak <= 0) peak = 1;
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture,
            $"<svg class=\"plot histogram\" id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\" role=\"img\"><title>{E(title)}</title>");
        Text(svg, left, 14, Shorten(title, 52), "start", title, "title");
        double binW = plotW / h.Bins;
        // Before fills each bin; after is a narrower bar inside it, so both stay visible where they overlap.
        void Draw(IReadOnlyList<long> counts, string color, string cls, double share)
        {
            double barW = Math.Max(binW * share - 0.5, 0.5), inset = (binW - barW) / 2;
            for (int b = 0; b < counts.Count; b++)
            {
                if (counts[b] == 0) continue;
                double bh = plotH * Math.Log(1 + counts[b]) / peak;
                svg.Append(CultureInfo.InvariantCulture,
                    $"<rect class=\"mark {cls}\" x=\"{F(left + b * binW + inset)}\" y=\"{F(top + plotH - bh)}\" width=\"{F(barW)}\" height=\"{F(bh)}\" fill=\"{color}\"><title>{cls}: {counts[b]}</title></rect>");
            }
        }
        Draw(h.Before, BeforeColor, "before", 1);
        if (h.After is { } after) Draw(after, AfterColor, "after", 0.5);
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" y1=\"{F(top + plotH)}\" x2=\"{F(left + plotW)}\" y2=\"{F(top + plotH)}\" stroke=\"#555\"/>");
        Text(svg, left, height - 10, ReportText.Scientific(h.Min), "start", null, "axis");
        Text(svg, left + plotW, height - 10, ReportText.Scientific(h.Max), "end", null, "axis");
        if (h.Min < 0 && h.Max > 0)
        {
            double x0 = left + plotW * -h.Min / (h.Max - h.Min);
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{F(x0)}\" y1=\"{top}\" x2=\"{F(x0)}\" y2=\"{F(top + plotH + 4)}\" stroke=\"#555\" stroke-dasharray=\"2,2\"/>");
            Text(svg, x0, height - 10, "0", "middle", null, "axis");
        }
        svg.Append("</svg>");
        return svg.ToString();
    }

    private static StringBuilder Open(string id, string title, int height)
    {
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture,
            $"<svg class=\"plot\" id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{height}\" viewBox=\"0 0 {Width} {height}\" role=\"img\"><title>{E(title)}</title>");
        return svg;
    }

    private static string Close(StringBuilder svg) => svg.Append("</svg>").ToString();

    private static void Legend(StringBuilder svg, IReadOnlyList<(string Name, string Color)> entries, double x)
    {
        foreach (var (name, color) in entries)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(x)}\" y=\"6\" width=\"12\" height=\"12\" fill=\"{color}\"/>");
            Text(svg, x + 16, 16, name, "start", null, "legend");
            x += 24 + 7.5 * name.Length;
        }
    }

    private static void Text(StringBuilder svg, double x, double y, string text, string anchor, string? tooltip = null, string cls = "label")
    {
        svg.Append(CultureInfo.InvariantCulture, $"<text class=\"{cls}\" x=\"{F(x)}\" y=\"{F(y)}\" text-anchor=\"{anchor}\">");
        if (tooltip is not null && tooltip != text) svg.Append("<title>").Append(E(tooltip)).Append("</title>");
        svg.Append(E(text)).Append("</text>");
    }

    /// <summary>Long names keep their end (the part that tells layers apart).</summary>
    private static string Shorten(string text, int max)
    {
        if (text.Length <= max) return text;
        var tail = text[^(max - 1)..];
        return "…" + (char.IsLowSurrogate(tail[0]) ? tail[1..] : tail);
    }

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>HTML-encodes text for element content and attribute values (&lt; &gt; &amp; " ').</summary>
    internal static string E(string text) => WebUtility.HtmlEncode(text);
}
