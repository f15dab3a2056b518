using System.Numerics.Tensors;
using System.Text.Json.Serialization;

namespace MLNetCompress.Reporting;

/// <summary>
/// Histograms of one weight's values before and after compression over the same bins, so the two can be laid over
/// each other: <see cref="Bins"/> equal bins from <see cref="Min"/> to <see cref="Max"/> (the last one closed).
/// </summary>
public sealed record WeightHistogram
{
    /// <summary>Bins used when none are asked for.</summary>
    public const int DefaultBins = 48;

    /// <summary>The lower edge of the first bin: the smallest value before or after.</summary>
    [JsonPropertyName("min")]
    public required double Min { get; init; }

    /// <summary>The upper edge of the last bin: the largest value before or after.</summary>
    [JsonPropertyName("max")]
    public required double Max { get; init; }

    /// <summary>Number of bins.</summary>
    [JsonPropertyName("bins")]
    public required int Bins { get; init; }

    /// <summary>Values per bin before; they sum to the weight's element count.</summary>
    [JsonPropertyName("before")]
    public required IReadOnlyList<long> Before { get; init; }

    /// <summary>Values per bin after, or null when the compressed model has no single tensor for the weight (a low-rank split).</summary>
    [JsonPropertyName("after")]
    public IReadOnlyList<long>? After { get; init; }

    /// <summary>Bins both sets of values over one range. Non-finite values are left out of the counts.</summary>
    /// <param name="before">The original values.</param>
    /// <param name="after">The values the compressed model computes, or null.</param>
    /// <param name="bins">Number of bins, at least 1.</param>
    public static WeightHistogram Of(ReadOnlySpan<float> before, ReadOnlySpan<float> after, int bins = DefaultBins)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bins, 1);
        bool hasAfter = after.Length > 0;
        var (min, max) = Range(before);
        if (hasAfter)
        {
            var (a, b) = Range(after);
            min = Math.Min(min, a);
            max = Math.Max(max, b);
        }
        if (!(min <= max)) (min, max) = (0, 0);
        return new WeightHistogram
        {
            Min = min,
            Max = max,
            Bins = bins,
            Before = Count(before, min, max, bins),
            After = hasAfter ? Count(after, min, max, bins) : null,
        };
    }

    /// <summary>Bins only the original values (the weight has no single tensor after).</summary>
    public static WeightHistogram Of(ReadOnlySpan<float> before, int bins = DefaultBins) => Of(before, [], bins);

    private static (double Min, double Max) Range(ReadOnlySpan<float> values)
    {
        if (values.Length == 0) return (double.PositiveInfinity, double.NegativeInfinity);
        // TensorPrimitives.Min/Max return NaN when any value is NaN; fall back to a finite scan then.
        double min = TensorPrimitives.Min(values), max = TensorPrimitives.Max(values);
        if (double.IsFinite(min) && double.IsFinite(max)) return (min, max);
        min = double.PositiveInfinity; max = double.NegativeInfinity;
        foreach (float v in values)
            if (float.IsFinite(v)) { min = Math.Min(min, v); max = Math.Max(max, v); }
        return (min, max);
    }

    private static long[] Count(ReadOnlySpan<float> values, double min, double max, int bins)
    {
        var counts = new long[bins];
        double width = (max - min) / bins;
        foreach (float v in values)
        {
            if (!float.IsFinite(v)) continue;
            int bin = width > 0 ? (int)((v - min) / width) : 0;
            counts[Math.Clamp(bin, 0, bins - 1)]++;
        }
        return counts;
    }
}
