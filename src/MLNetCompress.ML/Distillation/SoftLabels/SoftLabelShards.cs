namespace MLNetCompress.ML.Distillation;

/// <summary>Joins shard files (from runs with <see cref="SoftLabelOptions.Shard"/>) into one soft-label file in row
/// order. The shards may have any of the three formats and the result another.</summary>
public static class SoftLabelShards
{
    /// <summary>Merges every shard 0..n−1 of one run into <paramref name="outputPath"/>, written atomically.</summary>
    /// <param name="shardPaths">The shard files, in any order; each shard exactly once.</param>
    /// <param name="outputPath">The merged file (.idv, .csv or .parquet).</param>
    /// <param name="cancellationToken">Stops the merge; nothing is left half-written.</param>
    /// <returns>The merged file's description.</returns>
    /// <exception cref="SoftLabelException">A file is not a complete shard, shards are missing or repeated, or they
    /// come from runs with different settings.</exception>
    public static SoftLabelInfo Merge(IReadOnlyList<string> shardPaths, string outputPath, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(shardPaths);
        ArgumentNullException.ThrowIfNull(outputPath);
        SoftLabelFile.FormatOf(outputPath);
        if (shardPaths.Count == 0) throw new SoftLabelException("give the shard files to merge");
        var full = Path.GetFullPath(outputPath);
        var shards = new List<(string Path, SoftLabelInfo Info)>();
        foreach (var path in shardPaths)
        {
            if (string.Equals(Path.GetFullPath(path), full, StringComparison.Ordinal))
                throw new SoftLabelException($"the output '{outputPath}' is also one of the shards; write the merged file elsewhere");
            var info = SoftLabelFile.ReadInfo(path);
            if (info.Shard is null) throw new SoftLabelException($"'{path}' is a whole soft-label file, not a shard; merge only the OUT.shard-i-of-n files of one run");
            shards.Add((path, info));
        }
        var first = shards[0].Info;
        foreach (var (path, info) in shards.Skip(1))
        {
            if (!info.SameSettings(first) || info.Shard!.Count != first.Shard!.Count || info.Shard.TotalRows != first.Shard.TotalRows)
                throw new SoftLabelException($"'{path}' comes from a run with other settings than '{shards[0].Path}' (teachers, temperature, form, data or shard count); merge the shards of one run");
        }
        var count = first.Shard!.Count;
        var byIndex = new (string Path, SoftLabelInfo Info)?[count];
        foreach (var s in shards)
        {
            if (byIndex[s.Info.Shard!.Index] is { } twice)
                throw new SoftLabelException($"shard {s.Info.Shard.Index}/{count} is given twice ('{twice.Path}' and '{s.Path}')");
            byIndex[s.Info.Shard.Index] = s;
        }
        var missing = Enumerable.Range(0, count).Where(i => byIndex[i] is null).ToList();
        if (missing.Count > 0)
            throw new SoftLabelException($"shard{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Select(i => $"{i}/{count}"))} missing; run soft-labels with --shard for {(missing.Count > 1 ? "them" : "it")} first");
        long next = 0;
        foreach (var s in byIndex)
        {
            var shard = s!.Value.Info.Shard!;
            if (shard.FirstRow != next || s.Value.Info.Rows != new SoftLabelShard(shard.Index, count).Range(shard.TotalRows).Count)
                throw new SoftLabelException($"shard '{s.Value.Path}' holds rows {shard.FirstRow}.. ({s.Value.Info.Rows}) but rows from {next} belong there; regenerate it");
            next += s.Value.Info.Rows;
        }
        var template = first with { Shard = null, Rows = 0 };
        return SoftLabelFile.Write(outputPath, template, byIndex.SelectMany(s => SoftLabelFile.OpenBlocks(s!.Value.Path, s.Value.Info)), cancellationToken);
    }
}
