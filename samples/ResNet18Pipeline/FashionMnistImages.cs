using Microsoft.ML.OnnxRuntime.Tensors;
using MLNetCompress.Data;
using SkiaSharp;

namespace ResNet18Pipeline;

/// <summary>One image file and its class, as the pipeline reads them.</summary>
public sealed class ImageRow
{
    /// <summary>The PNG file's name inside the image folder.</summary>
    public string ImagePath { get; set; } = "";

    /// <summary>The Fashion-MNIST class name, e.g. "Sneaker".</summary>
    public string Label { get; set; } = "";
}

/// <summary>Writes images of the bundled Fashion-MNIST subset (IDX files) out as PNG files, so that ML.NET's
/// LoadImages reads them the way it reads any image folder.</summary>
public static class FashionMnistImages
{
    /// <summary>The ten Fashion-MNIST classes, by label.</summary>
    public static readonly string[] ClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>The repository's onnx-samples/fashion-mnist folder, searched upward from the current folder and the program's.</summary>
    public static string FindSubset()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "onnx-samples", "fashion-mnist");
                if (Directory.Exists(candidate)) return candidate;
            }
        throw new DirectoryNotFoundException("onnx-samples/fashion-mnist was not found above the current folder; run from the repository.");
    }

    /// <summary>Writes the first <paramref name="count"/> images of a split as 28×28 PNG files into <paramref name="folder"/>.</summary>
    /// <returns>One row per image: its file name and class.</returns>
    public static ImageRow[] Write(string subset, FashionMnistSplit split, int count, string folder)
    {
        Directory.CreateDirectory(folder);
        var feed = new FashionMnistFeed(subset, [new ModelInputInfo("pixels", TensorElementType.Float, [-1, 784])], split);
        var rows = new List<ImageRow>(count);
        var rgba = new byte[28 * 28 * 4];
        using var bitmap = new SKBitmap(new SKImageInfo(28, 28, SKColorType.Rgba8888, SKAlphaType.Opaque));
        foreach (var batch in feed.Batches(100, count))
        {
            var pixels = batch.Inputs["pixels"].FloatData;   // p/255, row-major
            for (int r = 0; r < batch.RowCount; r++)
            {
                for (int i = 0; i < 784; i++)
                {
                    byte v = (byte)MathF.Round(pixels[r * 784 + i] * 255f);
                    rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = v;
                    rgba[4 * i + 3] = 255;
                }
                System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
                string name = $"{split.ToString().ToLowerInvariant()}-{batch.FirstRow + r:D4}.png";
                using (var png = bitmap.Encode(SKEncodedImageFormat.Png, 100))
                using (var file = File.Create(Path.Combine(folder, name)))
                    png.SaveTo(file);
                rows.Add(new ImageRow { ImagePath = name, Label = ClassNames[batch.Labels![r]] });
            }
        }
        return rows.ToArray();
    }
}
