using System.Globalization;

namespace MLNetCompress.ML.Distillation;

/// <summary>Shard <see cref="Index"/> (0-based) of <see cref="Count"/>: the rows
/// [⌊Index·N/Count⌋, ⌊(Index+1)·N/Count⌋) of N data rows, a contiguous range. Every machine that runs the same
/// data with the same count gets the same split; <see cref="SoftLabelShards.Merge"/> joins the shard files in
/// index order, which is row order.</summary>
/// <param name="Index">The shard, 0 to <paramref name="Count"/> − 1.</param>
/// <param name="Count">How many shards the data is split into.</param>
public readonly record struct SoftLabelShard(int Index, int Count)
{
    /// <summary>Parses <c>i/n</c> (e.g. <c>0/4</c> ... <c>3/4</c>).</summary>
    /// <exception cref="FormatException">Not i/n with 0 ≤ i &lt; n.</exception>
    public static SoftLabelShard Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var slash = text.IndexOf('/');
        if (slash < 0
            || !int.TryParse(text.AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture, out var index)
            || !int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var count))
            throw new FormatException($"a shard is i/n with whole numbers (e.g. 0/4), not '{text}'");
        if (count < 1) throw new FormatException($"a shard count must be at least 1, not {count} in '{text}'");
        if (index >= count) throw new FormatException($"shard index {index} is outside 0..{count - 1} in '{text}' (shards count from 0)");
        return new SoftLabelShard(index, count);
    }

    /// <summary>The first row and row count of this shard among <paramref name="totalRows"/> rows.</summary>
    public (long First, long Count) Range(long totalRows)
    {
        var first = (long)((Int128)totalRows * Index / Count);
        var end = (long)((Int128)totalRows * (Index + 1) / Count);
        return (first, end - first);
    }

    /// <summary>The file of this shard for output <paramref name="path"/>: <c>OUT.shard-i-of-n.EXT</c>.</summary>
    public string PathFor(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var ext = Path.GetExtension(path);
        return string.Concat(path.AsSpan(0, path.Length - ext.Length), $".shard-{Index}-of-{Count}", ext);
    }

    /// <inheritdoc />
    public override string ToString() => $"{Index}/{Count}";
}
