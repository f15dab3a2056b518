using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using MLNetCompress.Data;

namespace MLNetCompress.ML.Distillation;

/// <summary>Runs one teacher or an ensemble over a data set and writes the soft labels (see <see cref="SoftLabelFile"/>
/// for the file). One InferenceSession per teacher, batched; ONNX Runtime runs on one thread while the file is
/// written on another. With <see cref="SoftLabelOptions.Shard"/> only that shard's rows are labelled, into the
/// shard's own file; a file that is already complete with the same settings is kept (a rerun skips it).</summary>
public static class SoftLabelGenerator
{
    // Batches labelled ahead of the writer: enough to keep ONNX Runtime busy while a row group is written.
    private const int Prefetch = 8;

    /// <summary>Labels the rows of a data spec (see <see cref="DataSpec"/>) and writes them to
    /// <paramref name="outputPath"/> (.idv, .csv or .parquet; with a shard, to its <c>OUT.shard-i-of-n.EXT</c>).</summary>
    /// <param name="dataSpec">The data, e.g. <c>fashion-mnist:onnx-samples/fashion-mnist:test</c>; shaped to the first teacher's inputs.</param>
    /// <param name="outputPath">The soft-label file.</param>
    /// <param name="options">Teachers, temperature, form, batching, shard, device.</param>
    /// <param name="progress">Receives rows done and rows per second after each batch.</param>
    /// <param name="log">Receives one-line notes (CUDA fallback, features left out, a finished file kept).</param>
    /// <param name="cancellationToken">Stops the run; nothing is left half-written.</param>
    /// <exception cref="SoftLabelException">Teachers that do not fit together or an output that is not logits.</exception>
    /// <exception cref="DataSpecException">A bad data spec.</exception>
    public static SoftLabelResult Generate(string dataSpec, string outputPath, SoftLabelOptions options, IProgress<SoftLabelProgress>? progress = null,
        Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataSpec);
        // The feed is shaped to the teachers' inputs, so it is parsed once they are loaded.
        return LoadAndRun(teachers => DataSpec.Parse(dataSpec, teachers.Inputs,
                (options.DataOptions ?? new DataSpecOptions()) with { ModelPath = options.Teachers[0], Runtime = options.Runtime }),
            dataSpec, outputPath, options, progress, log, cancellationToken);
    }

    /// <summary>Labels the rows of <paramref name="feed"/> (built against the first teacher's inputs) and writes
    /// them to <paramref name="outputPath"/>.</summary>
    public static SoftLabelResult Generate(IDataFeed feed, string outputPath, SoftLabelOptions options, IProgress<SoftLabelProgress>? progress = null,
        Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(feed);
        return LoadAndRun(_ => feed, null, outputPath, options, progress, log, cancellationToken);
    }

    // Checks the options, loads the teachers (one session each), builds the feed against them and runs.
    private static SoftLabelResult LoadAndRun(Func<TeacherEnsemble, IDataFeed> feedFor, string? dataSpec, string outputPath, SoftLabelOptions options,
        IProgress<SoftLabelProgress>? progress, Action<string>? log, CancellationToken cancellationToken)
    {
        Validate(outputPath, options);
        var notes = new List<string>();
        void Note(string text)
        {
            notes.Add(text);
            log?.Invoke(text);
        }
        using var teachers = TeacherEnsemble.Load(options, Note);
        return Run(teachers, feedFor(teachers), dataSpec, outputPath, options, progress, Note, notes, cancellationToken);
    }

    /// <summary>Labels the rows of an ML.NET data view and writes them to <paramref name="outputPath"/>. The teacher's
    /// input reads column <paramref name="inputColumnName"/> (default: the column named like the input), a float
    /// vector per row; ids are <c>row#i</c> and labels −1 (the data view's own label is not carried over).</summary>
    /// <param name="data">The rows.</param>
    /// <param name="outputPath">The soft-label file.</param>
    /// <param name="options">Teachers, temperature, form, batching, shard, device.</param>
    /// <param name="inputColumnName">The column fed to a single-input teacher, or null.</param>
    /// <param name="progress">Receives rows done and rows per second after each batch.</param>
    /// <param name="log">Receives one-line notes.</param>
    /// <param name="cancellationToken">Stops the run; nothing is left half-written.</param>
    public static SoftLabelResult Generate(Microsoft.ML.IDataView data, string outputPath, SoftLabelOptions options, string? inputColumnName = null,
        IProgress<SoftLabelProgress>? progress = null, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        return LoadAndRun(teachers =>
        {
            Dictionary<string, string>? columnFor = null;
            if (inputColumnName is not null)
            {
                if (teachers.Inputs.Count != 1)
                    throw new SoftLabelException($"the teacher takes {teachers.Inputs.Count} inputs; name no input column and give columns named like the inputs");
                columnFor = new Dictionary<string, string> { [teachers.Inputs[0].Name] = inputColumnName };
            }
            return new MLNetCompress.ML.Data.DataViewFeed(data, teachers.Inputs, columnFor);
        }, null, outputPath, options, progress, log, cancellationToken);
    }

    private static void Validate(string outputPath, SoftLabelOptions options)
    {
        ArgumentNullException.ThrowIfNull(outputPath);
        ArgumentNullException.ThrowIfNull(options);
        SoftLabelFile.FormatOf(outputPath);
        if (options.Teachers.Count == 0) throw new SoftLabelException("give at least one teacher model");
        if (!(options.Temperature > 0) || double.IsInfinity(options.Temperature))
            throw new SoftLabelException($"the temperature must be a finite number > 0, not {options.Temperature}");
        if (options.TopK is < 1) throw new SoftLabelException($"top-k must be at least 1, not {options.TopK}");
        if (options.BatchSize < 1) throw new SoftLabelException($"the batch size must be at least 1, not {options.BatchSize}");
        if (options.MaxRows is < 0) throw new SoftLabelException($"the row limit must not be negative, not {options.MaxRows}");
        if (options.Shard is { } s && (s.Count < 1 || s.Index < 0 || s.Index >= s.Count))
            throw new SoftLabelException($"shard {s} is impossible; the index must be in 0..count-1");
    }

    private static SoftLabelResult Run(TeacherEnsemble loaded, IDataFeed feed, string? dataSpec, string outputPath, SoftLabelOptions options,
        IProgress<SoftLabelProgress>? progress, Action<string> note, List<string> notes, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        // One row settles the feature length and, when the output's shape leaves it open, the class count.
        var probe = feed.Batches(1, 1).FirstOrDefault() ?? throw new SoftLabelException($"the data ({feed.Description}) has no rows");
        var teachers = loaded.WithClassesFrom(probe.Inputs);
        if (options.TopK > teachers.Classes)
            throw new SoftLabelException($"top-k {options.TopK} is more than the {teachers.Classes} classes of output '{teachers.OutputName}'");
        int? featureLength = null;
        if (options.IncludeFeatures)
        {
            if (probe.Inputs.Count == 1 && probe.Inputs.Values.First().Data is float[] f) featureLength = f.Length / probe.RowCount;
            else note($"no Features column: the teacher takes {probe.Inputs.Count} input(s){(probe.Inputs.Count == 1 ? " of type " + probe.Inputs.Values.First().ElementType : "")}, not one float tensor");
        }

        long? total = feed.Count is long c ? Math.Min(c, options.MaxRows ?? long.MaxValue) : options.MaxRows;
        long first = 0;
        long? count = total;
        SoftLabelShardInfo? shardInfo = null;
        var path = outputPath;
        if (options.Shard is { } shard)
        {
            if (total is not long n)
                throw new SoftLabelException($"sharding needs the row count of the data, and {feed.Description} does not say; give a row limit");
            (first, var rows) = shard.Range(n);
            count = rows;
            shardInfo = new SoftLabelShardInfo(shard.Index, shard.Count, first, n);
            path = shard.PathFor(outputPath);
        }

        var template = new SoftLabelInfo
        {
            Classes = teachers.Classes,
            Temperature = options.Temperature,
            TopK = options.TopK,
            FeatureLength = featureLength,
            HasLabels = feed.HasLabels,
            Teachers = teachers.Names,
            TeacherSha256 = teachers.Sha256,
            OutputName = teachers.OutputName,
            Combine = options.Combine,
            Data = dataSpec ?? feed.Description,
            Shard = shardInfo,
        };
        if (SoftLabelFile.IsComplete(path, out var existing) && existing!.SameSettings(template) && existing.Shard == template.Shard)
        {
            note($"'{path}' is already complete ({existing.Rows} rows, same teachers and settings); kept as it is");
            return new SoftLabelResult(path, existing, Skipped: true, teachers.OnGpu, Stopwatch.GetElapsedTime(started), 0, notes);
        }

        var clock = Stopwatch.StartNew();
        long done = 0;
        IEnumerable<SoftLabelBlock> Reported(IEnumerable<SoftLabelBlock> blocks)
        {
            foreach (var b in blocks)
            {
                yield return b;
                done += b.Rows;
                progress?.Report(new SoftLabelProgress(done, count, done / Math.Max(clock.Elapsed.TotalSeconds, 1e-9)));
            }
        }
        SoftLabelInfo info;
        long labelled;
        if (options.CheckpointRows is long part and > 0 && count is long rowsToLabel && rowsToLabel > part)
        {
            (info, labelled) = WriteInParts(teachers, feed, options, path, template, first, rowsToLabel, part, Reported, note, ct);
        }
        else
        {
            var blocks = Blocks(teachers, feed, options, [(first, count is long n ? first + n : long.MaxValue)], template, ct);
            info = SoftLabelFile.Write(path, template, Reported(Prefetched(blocks, Prefetch, ct)), ct);
            labelled = info.Rows;
        }
        var seconds = clock.Elapsed.TotalSeconds;
        return new SoftLabelResult(path, info, Skipped: false, teachers.OnGpu, Stopwatch.GetElapsedTime(started), labelled / Math.Max(seconds, 1e-9), notes);
    }

    // Rows [first, first + count) in parts of `partRows` rows, each written atomically into PATH.parts/ as soon as it is
    // done; parts already complete with the same settings (from a run that was stopped) are kept and not labelled
    // again. At the end the parts are joined into PATH and the folder is removed. Returns the file's description
    // and the rows labelled in this call.
    private static (SoftLabelInfo Info, long Labelled) WriteInParts(TeacherEnsemble teachers, IDataFeed feed, SoftLabelOptions options, string path,
        SoftLabelInfo template, long first, long count, long partRows, Func<IEnumerable<SoftLabelBlock>, IEnumerable<SoftLabelBlock>> reported,
        Action<string> note, CancellationToken ct)
    {
        var folder = path + ".parts";
        Directory.CreateDirectory(folder);
        var parts = (int)((count + partRows - 1) / partRows);
        var ext = Path.GetExtension(path);
        var files = new string[parts];
        var todo = new List<int>();
        var expected = new SoftLabelInfo[parts];
        for (var k = 0; k < parts; k++)
        {
            var from = first + k * partRows;
            var rows = Math.Min(partRows, first + count - from);
            files[k] = Path.Combine(folder, $"part-{k:D5}-of-{parts:D5}{ext}");
            // A part is described as a shard whose rows are [from, from + rows) of the run's range.
            expected[k] = template with { Shard = new SoftLabelShardInfo(k, parts, from, first + count) };
            if (SoftLabelFile.IsComplete(files[k], out var existing) && existing!.SameSettings(template) && existing.Shard == expected[k].Shard && existing.Rows == rows)
                continue;
            todo.Add(k);
        }
        if (todo.Count < parts) note($"{parts - todo.Count} of {parts} parts in '{folder}' are already complete; labelling the other {todo.Count}");

        long labelled = 0;
        if (todo.Count > 0)
        {
            var ranges = todo.Select(k => (First: first + k * partRows, End: Math.Min(first + (k + 1) * partRows, first + count))).ToList();
            // Neighbouring parts are labelled as one range, so batches are not cut at every part boundary.
            var joined = new List<(long First, long End)>();
            foreach (var r in ranges)
            {
                if (joined.Count > 0 && joined[^1].End == r.First) joined[^1] = (joined[^1].First, r.End);
                else joined.Add(r);
            }
            var stream = new RowStream(reported(Prefetched(Blocks(teachers, feed, options, joined, template, ct), Prefetch, ct)).GetEnumerator());
            try
            {
                for (var i = 0; i < todo.Count; i++)
                {
                    var (from, end) = ranges[i];
                    labelled += SoftLabelFile.Write(files[todo[i]], expected[todo[i]], stream.Take(end - from), ct).Rows;
                }
            }
            finally
            {
                stream.Dispose();
            }
        }
        var info = SoftLabelFile.Write(path, template, files.SelectMany(f => SoftLabelFile.OpenBlocks(f, SoftLabelFile.ReadInfo(f))), ct);
        Directory.Delete(folder, recursive: true);
        return (info, labelled);
    }

    // Hands out a block stream a given number of rows at a time, splitting a block that straddles two parts.
    private sealed class RowStream(IEnumerator<SoftLabelBlock> blocks) : IDisposable
    {
        private SoftLabelBlock? _pending;

        public IEnumerable<SoftLabelBlock> Take(long rows)
        {
            while (rows > 0)
            {
                var block = _pending;
                _pending = null;
                if (block is null)
                {
                    if (!blocks.MoveNext()) yield break;
                    block = blocks.Current;
                }
                if (block.Rows <= rows)
                {
                    rows -= block.Rows;
                    yield return block;
                    continue;
                }
                _pending = block.Slice((int)rows, block.Rows - (int)rows);
                yield return block.Slice(0, (int)rows);
                rows = 0;
            }
        }

        public void Dispose() => blocks.Dispose();
    }

    /// <summary>The labelled blocks of the rows in <paramref name="ranges"/> ([first, end) pairs in increasing order;
    /// end long.MaxValue for all the rest), one block per batch and range.</summary>
    internal static IEnumerable<SoftLabelBlock> Blocks(TeacherEnsemble teachers, IDataFeed feed, SoftLabelOptions options, IReadOnlyList<(long First, long End)> ranges,
        SoftLabelInfo layout, CancellationToken ct)
    {
        var last = ranges[^1].End;
        int? maxRows = last == long.MaxValue ? null : (int)Math.Min(last, int.MaxValue);
        var fixedBatch = teachers.FixedBatch;
        foreach (var batch in feed.Batches(options.BatchSize, maxRows))
        {
            ct.ThrowIfCancellationRequested();
            foreach (var (first, end) in ranges)
            {
                if (end <= batch.FirstRow || first >= batch.FirstRow + batch.RowCount) continue;
                yield return Label(teachers, batch, options, Math.Max(first, batch.FirstRow), Math.Min(end, batch.FirstRow + batch.RowCount), fixedBatch, layout);
            }
        }
    }

    private static SoftLabelBlock Label(TeacherEnsemble teachers, DataBatch batch, SoftLabelOptions options, long from, long to, int fixedBatch, SoftLabelInfo layout)
    {
        var offset = (int)(from - batch.FirstRow);
        var rows = (int)(to - from);
        var inputs = offset == 0 && rows == batch.RowCount ? batch.Inputs : Slice(batch, offset, rows, Math.Max(rows, fixedBatch));
        var block = new SoftLabelBlock(rows, layout.Classes, layout.TopK, layout.FeatureLength);
        teachers.Label(inputs, rows, options.Temperature, options.Combine, block);
        for (var r = 0; r < rows; r++)
        {
            block.Ids[r] = batch.Ids[offset + r];
            block.Labels[r] = batch.Labels is { } labels ? labels[offset + r] : -1;
        }
        if (block.Features is not null)
        {
            var data = ((float[])batch.Inputs.Values.First().Data).AsSpan();
            var f = layout.FeatureLength!.Value;
            data.Slice(offset * f, rows * f).CopyTo(block.Features);
        }
        return block;
    }

    // Rows [offset, offset + rows) of a batch as their own tensors, padded with zero rows up to `padTo` for a model
    // whose batch size is fixed (the padded rows' outputs are not used).
    private static Dictionary<string, NamedTensor> Slice(DataBatch batch, int offset, int rows, int padTo)
    {
        var result = new Dictionary<string, NamedTensor>(batch.Inputs.Count);
        foreach (var (name, tensor) in batch.Inputs)
        {
            var shape = tensor.Shape.ToArray();
            var rowLength = tensor.RowCount == 0 ? 0 : (int)(tensor.Data.LongLength / tensor.RowCount);
            shape[0] = padTo;
            if (tensor.Data is float[] f)
            {
                var data = new float[(long)padTo * rowLength];
                f.AsSpan(offset * rowLength, rows * rowLength).CopyTo(data);
                result[name] = new NamedTensor(data, shape);
            }
            else
            {
                var data = new long[(long)padTo * rowLength];
                ((long[])tensor.Data).AsSpan(offset * rowLength, rows * rowLength).CopyTo(data);
                result[name] = new NamedTensor(data, shape);
            }
        }
        return result;
    }

    /// <summary>Enumerates <paramref name="source"/> on its own thread, up to <paramref name="capacity"/> items ahead
    /// of the consumer. An exception of the source comes out of the consumer's enumeration.</summary>
    internal static IEnumerable<T> Prefetched<T>(IEnumerable<T> source, int capacity, CancellationToken ct)
    {
        using var queue = new BlockingCollection<T>(capacity);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        ExceptionDispatchInfo? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                foreach (var item in source) queue.Add(item, stop.Token);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                // The consumer stopped (or the run was cancelled): nothing more to produce.
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
            }
            finally
            {
                queue.CompleteAdding();
            }
        })
        { IsBackground = true, Name = "soft-label teachers" };
        thread.Start();
        try
        {
            foreach (var item in queue.GetConsumingEnumerable(ct)) yield return item;
        }
        finally
        {
            stop.Cancel();
            thread.Join();
        }
        error?.Throw();
    }
}
