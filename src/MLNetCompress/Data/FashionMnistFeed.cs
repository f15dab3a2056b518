using System.Globalization;

namespace MLNetCompress.Data;

/// <summary>Which half of Fashion-MNIST (or MNIST) to read.</summary>
public enum FashionMnistSplit
{
    /// <summary>The t10k-* files.</summary>
    Test,

    /// <summary>The train-* files.</summary>
    Train,
}

/// <summary>Fashion-MNIST (or MNIST) from its gzipped IDX files, with labels. Pixels become
/// <c>(p / 255 - mean) / std</c> in float32, shaped to what the model's single float input wants:
/// [N,1,H,W], [N,H*W], [N,H,W] or [N,H,W,1].</summary>
public sealed class FashionMnistFeed : DataFeed
{
    private readonly IdxFile _images;
    private readonly IdxFile _labels;
    private readonly long[] _rowShape;
    private readonly float[] _lookup = new float[256];
    private readonly int _pixelsPerImage;

    /// <summary>Reads the split's two files from <paramref name="directory"/> (the names Debian's
    /// dataset-fashion-mnist uses, e.g. t10k-images-idx3-ubyte.gz; the unzipped names work too).</summary>
    /// <param name="directory">Folder with the IDX files.</param>
    /// <param name="inputs">The model's inputs: exactly one, float32.</param>
    /// <param name="split">Test (default) or train.</param>
    /// <param name="mean">Subtracted after scaling to [0,1].</param>
    /// <param name="std">Divides after the mean is subtracted; must be positive.</param>
    public FashionMnistFeed(string directory, IReadOnlyList<ModelInputInfo> inputs, FashionMnistSplit split = FashionMnistSplit.Test, float mean = 0f, float std = 1f)
        : base(inputs)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!(std > 0) || !float.IsFinite(std)) throw new DataSpecException($"fashion-mnist std must be a positive number, got {std.ToString(CultureInfo.InvariantCulture)}");
        if (!float.IsFinite(mean)) throw new DataSpecException("fashion-mnist mean must be a finite number");
        var input = SingleFloatInput("fashion-mnist", inputs);
        if (!Directory.Exists(directory)) throw new DataSpecException($"fashion-mnist folder {directory} does not exist");

        var prefix = split == FashionMnistSplit.Test ? "t10k" : "train";
        _images = IdxFile.Read(Find(directory, $"{prefix}-images-idx3-ubyte"), IdxFile.ImagesMagic);
        _labels = IdxFile.Read(Find(directory, $"{prefix}-labels-idx1-ubyte"), IdxFile.LabelsMagic);
        if (_images.Dims.Count != 3)
            throw new DataSpecException($"IDX file {_images.Name} has {_images.Dims.Count} dims; images need 3 (count, rows, columns)");
        if (_labels.Dims.Count != 1)
            throw new DataSpecException($"IDX file {_labels.Name} has {_labels.Dims.Count} dims; labels need 1");
        if (_labels.Dims[0] != _images.Dims[0])
            throw new DataSpecException($"fashion-mnist {split.ToString().ToLowerInvariant()} has {_images.Dims[0]} images but {_labels.Dims[0]} labels");

        Split = split;
        int h = _images.Dims[1], w = _images.Dims[2];
        _pixelsPerImage = h * w;
        long[][] candidates = [[1, h, w], [h * w], [h, w], [h, w, 1]];
        _rowShape = candidates.FirstOrDefault(c => input.AcceptsRows(c))
            ?? throw new DataSpecException($"fashion-mnist gives {ModelInputInfo.FormatRows(candidates[0])} or {ModelInputInfo.FormatRows(candidates[1])} but model input '{input.Name}' wants {input.FormatShape()}");
        // A 256-entry table turns each pixel into its normalised float with one load.
        for (var v = 0; v < 256; v++) _lookup[v] = (v / 255f - mean) / std;
    }

    /// <summary>The split read.</summary>
    public FashionMnistSplit Split { get; }

    /// <summary>Shape of one row as given to the model (without the batch axis).</summary>
    public IReadOnlyList<long> RowShape => _rowShape;

    /// <inheritdoc />
    public override long RowCount => _images.Dims[0];

    /// <inheritdoc />
    public override bool HasLabels => true;

    /// <inheritdoc />
    public override string Description =>
        $"fashion-mnist {Split.ToString().ToLowerInvariant()}, {RowCount} rows as {ModelInputInfo.FormatRows(_rowShape)}";

    /// <inheritdoc />
    protected override DataBatch CreateBatch(long start, int count)
    {
        var data = new float[(long)count * _pixelsPerImage];
        var pixels = _images.Data.AsSpan(checked((int)(start * _pixelsPerImage)), data.Length);
        var lookup = _lookup;
        for (var i = 0; i < pixels.Length; i++) data[i] = lookup[pixels[i]];
        var labels = new int[count];
        var labelBytes = _labels.Data.AsSpan((int)start, count);
        for (var i = 0; i < count; i++) labels[i] = labelBytes[i];
        var inputs = new Dictionary<string, NamedTensor>(1) { [Inputs[0].Name] = new NamedTensor(data, BatchShape(count, _rowShape)) };
        return new DataBatch(inputs, count, start, RowIds(Split == FashionMnistSplit.Test ? "test" : "train", start, count), labels);
    }

    private static string Find(string directory, string baseName)
    {
        foreach (var name in new[] { baseName + ".gz", baseName })
        {
            var path = Path.Combine(directory, name);
            if (File.Exists(path)) return path;
        }
        throw new DataSpecException($"fashion-mnist folder {directory} has no {baseName}.gz (nor {baseName})");
    }
}
