using System.Globalization;

namespace MLNetCompress.Inspection;

/// <summary>Formats byte and element counts for people: "44.6 MiB", "11.7M".</summary>
public static class Sizes
{
    /// <summary>Bytes in binary units with three significant figures: "912 B", "17.4 KiB", "44.6 MiB".</summary>
    public static string Format(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double v = bytes;
        int u = 0;
        while (Math.Abs(v) >= 1024 && u < units.Length - 1) { v /= 1024; u++; }
        if (u == 0) return bytes.ToString(CultureInfo.InvariantCulture) + " B";
        string format = Math.Abs(v) >= 100 ? "0" : Math.Abs(v) >= 10 ? "0.0" : "0.00";
        return v.ToString(format, CultureInfo.InvariantCulture) + " " + units[u];
    }

    /// <summary>A count with a decimal suffix: "912", "17.4K", "11.7M", "1.10B".</summary>
    public static string FormatCount(long count)
    {
        string[] units = ["", "K", "M", "B", "T"];
        double v = count;
        int u = 0;
        while (Math.Abs(v) >= 1000 && u < units.Length - 1) { v /= 1000; u++; }
        if (u == 0) return count.ToString(CultureInfo.InvariantCulture);
        string format = Math.Abs(v) >= 100 ? "0" : Math.Abs(v) >= 10 ? "0.0" : "0.00";
        return v.ToString(format, CultureInfo.InvariantCulture) + units[u];
    }
}
