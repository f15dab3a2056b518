using System.Numerics.Tensors;
using StbImageSharp;

namespace MLNetCompress.Data;

/// <summary>The .jpg / .jpeg / .png / .bmp files of a folder (sorted by name, ordinal), decoded to RGB and
/// preprocessed by an <see cref="ImagePreprocessing"/>, for a model with one float input [N,3,S,S] (NCHW) or
/// [N,S,S,3] (NHWC). Ids are the file names.</summary>
public sealed class ImageFolderFeed : DataFeed
{
    private static readonly string[] Extensions = [".jpg", ".jpeg", ".png", ".bmp"];

    private readonly string[] _files;
    private readonly bool _nhwc;
    private readonly long[] _rowShape;
    private readonly float[] _a = new float[3];
    private readonly float[] _b = new float[3];
    private readonly string _directory;

    /// <summary>Lists the images of <paramref name="directory"/> and checks the preprocessing against the model.</summary>
    public ImageFolderFeed(string directory, ImagePreprocessing preprocessing, IReadOnlyList<ModelInputInfo> inputs)
        : base(inputs)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(preprocessing);
        preprocessing.Validate();
        Preprocessing = preprocessing;
        var input = SingleFloatInput("images", inputs);
        if (!Directory.Exists(directory)) throw new DataSpecException($"image folder {directory} does not exist");
        _files = Directory.EnumerateFiles(directory)
            .Where(f => Extensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal)
            .ToArray();
        if (_files.Length == 0) throw new DataSpecException($"image folder {directory} has no .jpg, .jpeg, .png or .bmp files");

        var s = preprocessing.CropSize;
        long[] nchw = [3, s, s], nhwc = [s, s, 3];
        // A channel axis of 3 in front means NCHW; only a fixed 3 at the back (and not in front) means NHWC.
        _nhwc = input.Rank == 4 && input.Dims[3] == 3 && input.Dims[1] != 3 && input.AcceptsRows(nhwc);
        _rowShape = _nhwc ? nhwc : nchw;
        if (!input.AcceptsRows(_rowShape))
            throw new DataSpecException($"images gives {ModelInputInfo.FormatRows(nchw)} but model input '{input.Name}' wants {input.FormatShape()}");
        // Per-channel affine form of (p * scale - mean) / std.
        for (var c = 0; c < 3; c++)
        {
            _a[c] = preprocessing.Scale / preprocessing.Std[c];
            _b[c] = -preprocessing.Mean[c] / preprocessing.Std[c];
        }
        _directory = directory;
    }

    /// <summary>The preprocessing applied.</summary>
    public ImagePreprocessing Preprocessing { get; }

    /// <summary>The image files, in feed order.</summary>
    public IReadOnlyList<string> Files => _files;

    /// <inheritdoc />
    public override long RowCount => _files.Length;

    /// <inheritdoc />
    public override bool HasLabels => false;

    /// <inheritdoc />
    public override string Description =>
        $"images {_directory} ({Preprocessing.Name}), {RowCount} files as {ModelInputInfo.FormatRows(_rowShape)}";

    /// <inheritdoc />
    protected override DataBatch CreateBatch(long start, int count)
    {
        var s = Preprocessing.CropSize;
        var plane = s * s;
        var rowLength = 3 * plane;
        var data = new float[(long)count * rowLength];
        var hwc = new float[rowLength];
        var planar = _nhwc ? new float[rowLength] : [];
        var resampler = new ImageResampler(Preprocessing.ResizeShorter, s);
        var ids = new string[count];
        var meanImage = Preprocessing.MeanImage;
        for (var r = 0; r < count; r++)
        {
            var file = _files[start + r];
            ids[r] = Path.GetFileName(file);
            var image = Decode(file);
            resampler.Run(image.Data, image.Width, image.Height, hwc);
            var row = data.AsSpan(r * rowLength, rowLength);
            for (var c = 0; c < 3; c++)
            {
                var src = Preprocessing.Bgr ? 2 - c : c;
                float a = _a[c], b = _b[c];
                // Planar output first (the common NCHW case); NHWC interleaves it afterwards.
                var target = _nhwc ? planar.AsSpan(c * plane, plane) : row.Slice(c * plane, plane);
                for (var p = 0; p < plane; p++) target[p] = hwc[p * 3 + src] * a + b;
                if (meanImage is not null) TensorPrimitives.Subtract(target, meanImage.AsSpan(c * plane, plane), target);
            }
            if (_nhwc)
                for (var p = 0; p < plane; p++)
                    for (var c = 0; c < 3; c++) row[p * 3 + c] = planar[c * plane + p];
        }
        var inputs = new Dictionary<string, NamedTensor>(1) { [Inputs[0].Name] = new NamedTensor(data, BatchShape(count, _rowShape)) };
        return new DataBatch(inputs, count, start, ids);
    }

    private static ImageResult Decode(string file)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataSpecException($"cannot read image {file}: {e.Message}", e);
        }
        try
        {
            var image = ImageResult.FromMemory(bytes, ColorComponents.RedGreenBlue);
            if (image.Width <= 0 || image.Height <= 0) throw new DataSpecException($"image {file} has no pixels");
            return image;
        }
        catch (Exception e) when (e is not DataSpecException)
        {
            throw new DataSpecException($"image {file} could not be decoded: {e.Message}", e);
        }
    }
}
