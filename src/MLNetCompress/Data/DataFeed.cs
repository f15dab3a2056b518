namespace MLNetCompress.Data;

/// <summary>Base of the feeds with a known row count: batching, row limits and fixed batch dims live here;
/// a feed only builds the batch for a row range.</summary>
public abstract class DataFeed : IDataFeed
{
    /// <summary>Creates the base over the model inputs this feed fills.</summary>
    protected DataFeed(IReadOnlyList<ModelInputInfo> inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        Inputs = inputs;
        long fixedBatch = 0;
        foreach (var input in inputs)
        {
            if (!input.HasFixedBatch) continue;
            if (fixedBatch != 0 && fixedBatch != input.Dims[0])
                throw new DataSpecException($"model inputs disagree on the batch dim: '{input.Name}' wants {input.Dims[0]}, another {fixedBatch}");
            fixedBatch = input.Dims[0];
        }
        FixedBatchSize = checked((int)fixedBatch);
    }

    /// <inheritdoc />
    public abstract string Description { get; }

    /// <summary>Rows this feed holds.</summary>
    public abstract long RowCount { get; }

    /// <inheritdoc />
    public long? Count => RowCount;

    /// <inheritdoc />
    public abstract bool HasLabels { get; }

    /// <inheritdoc />
    public IReadOnlyList<ModelInputInfo> Inputs { get; }

    /// <summary>The batch size the model's inputs fix, or 0 when it is free.</summary>
    public int FixedBatchSize { get; }

    /// <inheritdoc />
    public IEnumerable<DataBatch> Batches(int batchSize, int? maxRows = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (maxRows is < 0) throw new ArgumentOutOfRangeException(nameof(maxRows), "maxRows must not be negative");
        return Enumerate(FixedBatchSize > 0 ? FixedBatchSize : batchSize, maxRows is int m ? Math.Min(m, RowCount) : RowCount);
    }

    private IEnumerable<DataBatch> Enumerate(int size, long total)
    {
        for (long start = 0; start < total; start += size)
        {
            var count = (int)Math.Min(size, total - start);
            if (FixedBatchSize > 0 && count < FixedBatchSize) yield break;
            yield return CreateBatch(start, count);
        }
    }

    /// <summary>Builds the batch of rows [<paramref name="start"/>, <paramref name="start"/> + <paramref name="count"/>).</summary>
    protected abstract DataBatch CreateBatch(long start, int count);

    /// <summary>Ids "prefix#i" for a row range.</summary>
    protected static string[] RowIds(string prefix, long start, int count)
    {
        var ids = new string[count];
        for (var i = 0; i < count; i++) ids[i] = string.Concat(prefix, "#", (start + i).ToString(System.Globalization.CultureInfo.InvariantCulture));
        return ids;
    }

    /// <summary>The one float32 input of a single-input model, or a <see cref="DataSpecException"/> naming the feed.</summary>
    protected static ModelInputInfo SingleFloatInput(string feed, IReadOnlyList<ModelInputInfo> inputs)
    {
        if (inputs.Count != 1)
            throw new DataSpecException($"{feed} fills one input but the model has {inputs.Count}: {string.Join(", ", inputs.Select(i => $"'{i.Name}'"))}");
        var input = inputs[0];
        if (input.ElementType != Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float)
            throw new DataSpecException($"{feed} gives float32 but model input '{input.Name}' wants {input.ElementType}");
        return input;
    }

    /// <summary>The batch shape for <paramref name="rows"/> rows of <paramref name="rowShape"/>.</summary>
    protected static long[] BatchShape(int rows, ReadOnlySpan<long> rowShape)
    {
        var shape = new long[rowShape.Length + 1];
        shape[0] = rows;
        rowShape.CopyTo(shape.AsSpan(1));
        return shape;
    }
}
