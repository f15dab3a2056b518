namespace MLNetCompress.ML.Distillation;

/// <summary>Rows of a soft-label file in memory, column by column, vectors flattened row-major. A block is in the
/// dense form (<see cref="Dense"/>) or the top-k form (<see cref="TopIndices"/>, <see cref="TopValues"/>).</summary>
internal sealed class SoftLabelBlock
{
    /// <summary>A block of <paramref name="rows"/> rows with freshly allocated columns.</summary>
    public SoftLabelBlock(int rows, int classes, int? topK, int? featureLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        Rows = rows;
        Classes = classes;
        TopK = topK;
        FeatureLength = featureLength;
        Ids = new string[rows];
        Labels = new int[rows];
        if (featureLength is int f) Features = new float[(long)rows * f];
        if (topK is int k)
        {
            TopIndices = new int[(long)rows * k];
            TopValues = new float[(long)rows * k];
        }
        else
        {
            Dense = new float[(long)rows * classes];
        }
    }

    /// <summary>Rows in the block.</summary>
    public int Rows { get; }

    /// <summary>Number of classes C.</summary>
    public int Classes { get; }

    /// <summary>K of the top-k form, or null for the dense form.</summary>
    public int? TopK { get; }

    /// <summary>Length of a feature row, or null when there are no features.</summary>
    public int? FeatureLength { get; }

    /// <summary>Row ids.</summary>
    public string[] Ids { get; }

    /// <summary>Hard labels, −1 when unknown.</summary>
    public int[] Labels { get; }

    /// <summary>Features, Rows × FeatureLength, or null.</summary>
    public float[]? Features { get; }

    /// <summary>Dense soft labels, Rows × C, or null in the top-k form.</summary>
    public float[]? Dense { get; }

    /// <summary>Top-k class indices (largest probability first), Rows × K, or null in the dense form.</summary>
    public int[]? TopIndices { get; }

    /// <summary>Top-k probabilities matching <see cref="TopIndices"/>, Rows × K, or null in the dense form.</summary>
    public float[]? TopValues { get; }

    /// <summary>Values per row of the soft-label columns: C or K.</summary>
    public int Width => TopK ?? Classes;

    public Span<float> FeatureRow(int row) => Features.AsSpan(row * FeatureLength!.Value, FeatureLength.Value);

    public Span<float> DenseRow(int row) => Dense.AsSpan(row * Classes, Classes);

    public Span<int> IndexRow(int row) => TopIndices.AsSpan(row * TopK!.Value, TopK.Value);

    public Span<float> ValueRow(int row) => TopValues.AsSpan(row * TopK!.Value, TopK.Value);

    /// <summary>Writes the dense distribution of <paramref name="row"/> into <paramref name="destination"/> (length C).
    /// In the top-k form the K stored probabilities go to their classes and the remaining mass
    /// max(0, 1 − Σ values) is shared evenly by the C − K other classes.</summary>
    public void CopyDenseRow(int row, Span<float> destination)
    {
        if (Dense is not null)
        {
            DenseRow(row).CopyTo(destination);
            return;
        }
        SoftLabelMath.Densify(IndexRow(row), ValueRow(row), destination);
    }

    /// <summary>Rows [<paramref name="start"/>, <paramref name="start"/> + <paramref name="count"/>) as a block of their own.</summary>
    public SoftLabelBlock Slice(int start, int count)
    {
        var result = new SoftLabelBlock(count, Classes, TopK, FeatureLength);
        Ids.AsSpan(start, count).CopyTo(result.Ids);
        Labels.AsSpan(start, count).CopyTo(result.Labels);
        if (Features is not null) Features.AsSpan(start * FeatureLength!.Value, count * FeatureLength.Value).CopyTo(result.Features);
        if (Dense is not null) Dense.AsSpan(start * Classes, count * Classes).CopyTo(result.Dense);
        if (TopIndices is not null)
        {
            TopIndices.AsSpan(start * TopK!.Value, count * TopK.Value).CopyTo(result.TopIndices);
            TopValues!.AsSpan(start * TopK.Value, count * TopK.Value).CopyTo(result.TopValues);
        }
        return result;
    }

    /// <summary>The given blocks joined into one, in order (they share a layout).</summary>
    public static SoftLabelBlock Concat(IReadOnlyList<SoftLabelBlock> blocks)
    {
        if (blocks.Count == 1) return blocks[0];
        var first = blocks[0];
        var result = new SoftLabelBlock(blocks.Sum(b => b.Rows), first.Classes, first.TopK, first.FeatureLength);
        var at = 0;
        foreach (var b in blocks)
        {
            b.Ids.CopyTo(result.Ids, at);
            b.Labels.CopyTo(result.Labels, at);
            if (b.Features is not null) b.Features.CopyTo(result.Features!, (long)at * b.FeatureLength!.Value);
            if (b.Dense is not null) b.Dense.CopyTo(result.Dense!, (long)at * b.Classes);
            if (b.TopIndices is not null)
            {
                b.TopIndices.CopyTo(result.TopIndices!, (long)at * b.TopK!.Value);
                b.TopValues!.CopyTo(result.TopValues!, (long)at * b.TopK!.Value);
            }
            at += b.Rows;
        }
        return result;
    }

    /// <summary>Groups a stream of blocks into blocks of at least <paramref name="rows"/> rows (the last may be
    /// smaller), so that Parquet row groups are not tiny.</summary>
    public static IEnumerable<SoftLabelBlock> Regroup(IEnumerable<SoftLabelBlock> blocks, int rows)
    {
        var pending = new List<SoftLabelBlock>();
        var count = 0;
        foreach (var b in blocks)
        {
            if (b.Rows == 0) continue;
            pending.Add(b);
            count += b.Rows;
            if (count < rows) continue;
            yield return Concat(pending);
            pending.Clear();
            count = 0;
        }
        if (pending.Count > 0) yield return Concat(pending);
    }
}
