namespace MLNetCompress.Data;

/// <summary>A source of model input batches for calibration, evaluation and teachers. A feed is built against
/// a model's inputs and shapes its tensors to fit them. Enumerating <see cref="Batches"/> again starts over.</summary>
public interface IDataFeed
{
    /// <summary>What the data is, in a few words (e.g. "fashion-mnist test, 1000 rows as [N,784]").</summary>
    string Description { get; }

    /// <summary>Number of rows, when known.</summary>
    long? Count { get; }

    /// <summary>True when the batches carry class labels.</summary>
    bool HasLabels { get; }

    /// <summary>The model inputs this feed fills.</summary>
    IReadOnlyList<ModelInputInfo> Inputs { get; }

    /// <summary>The rows in batches of <paramref name="batchSize"/> (the last may be smaller), at most
    /// <paramref name="maxRows"/> rows in all. A model whose batch dim is fixed gets batches of exactly that size;
    /// rows left over that cannot fill one are skipped.</summary>
    IEnumerable<DataBatch> Batches(int batchSize, int? maxRows = null);
}
