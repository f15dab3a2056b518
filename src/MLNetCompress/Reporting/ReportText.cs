using System.Globalization;
using MLNetCompress.Inspection;

namespace MLNetCompress.Reporting;

/// <summary>Number formats shared by the Markdown and HTML reports (invariant culture, so reports do not depend on the machine's locale).</summary>
internal static class ReportText
{
    public static string Bytes(long bytes) => Sizes.Format(bytes);

    public static string Count(long count) => Sizes.FormatCount(count);

    public static string Percent(double? share) => share is double s && double.IsFinite(s) ? s.ToString("0.0%", CultureInfo.InvariantCulture) : "–";

    public static string Ratio(double ratio) => double.IsFinite(ratio) ? ratio.ToString("0.00", CultureInfo.InvariantCulture) + "x" : "–";

    public static string Fixed(double? value, string format = "0.0000") =>
        value is double v ? (double.IsNaN(v) ? "NaN" : v.ToString(format, CultureInfo.InvariantCulture)) : "–";

    public static string Scientific(double? value) =>
        value is double v ? (double.IsNaN(v) ? "NaN" : v == 0 ? "0" : v.ToString("0.00e+0", CultureInfo.InvariantCulture)) : "–";

    public static string Ms(double ms) => ms.ToString("0.###", CultureInfo.InvariantCulture) + " ms";

    public static string Shape(IReadOnlyList<long> shape) => "[" + string.Join(",", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";

    public static string Ranks(IReadOnlyList<int>? ranks) => ranks is null ? "–" : string.Join("/", ranks.Select(r => r.ToString(CultureInfo.InvariantCulture)));

    public static string Int(int? value) => value is int v ? v.ToString(CultureInfo.InvariantCulture) : "–";

    public static string Number(double value, string format = "0.#") => value.ToString(format, CultureInfo.InvariantCulture);
}
