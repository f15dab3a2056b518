namespace MLNetCompress.Data;

/// <summary>One batch of rows: a tensor per model input, and per row an id and (when the data has them) a label.</summary>
public sealed class DataBatch
{
    /// <summary>Creates a batch; every tensor must have <paramref name="rowCount"/> rows.</summary>
    /// <param name="inputs">Tensors by model input name.</param>
    /// <param name="rowCount">Rows in this batch.</param>
    /// <param name="firstRow">Index of this batch's first row in the feed.</param>
    /// <param name="ids">One id per row (file name, line number, ...).</param>
    /// <param name="labels">One class label per row, or null.</param>
    public DataBatch(IReadOnlyDictionary<string, NamedTensor> inputs, int rowCount, long firstRow, IReadOnlyList<string> ids, int[]? labels = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(ids);
        foreach (var (name, tensor) in inputs)
            if (tensor.RowCount != rowCount)
                throw new ArgumentException($"input '{name}' has {tensor.RowCount} rows, the batch {rowCount}", nameof(inputs));
        if (ids.Count != rowCount) throw new ArgumentException($"{ids.Count} ids for {rowCount} rows", nameof(ids));
        if (labels is not null && labels.Length != rowCount) throw new ArgumentException($"{labels.Length} labels for {rowCount} rows", nameof(labels));
        Inputs = inputs;
        RowCount = rowCount;
        FirstRow = firstRow;
        Ids = ids;
        Labels = labels;
    }

    /// <summary>Tensors by model input name.</summary>
    public IReadOnlyDictionary<string, NamedTensor> Inputs { get; }

    /// <summary>Rows in this batch.</summary>
    public int RowCount { get; }

    /// <summary>Index of this batch's first row in the feed.</summary>
    public long FirstRow { get; }

    /// <summary>One id per row.</summary>
    public IReadOnlyList<string> Ids { get; }

    /// <summary>One class label per row, or null when the data has none.</summary>
    public int[]? Labels { get; }
}
