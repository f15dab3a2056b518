using MLNetCompress.Runtime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Data;

/// <summary>How an image becomes model input: resize the shorter side to <see cref="ResizeShorter"/>
/// (antialiased bilinear, rounded to 8 bits), center-crop <see cref="CropSize"/> square, then per output channel
/// <c>(pixel * Scale - Mean[c]) / Std[c] - MeanImage[c, y, x]</c>. Channels are RGB, or BGR when
/// <see cref="Bgr"/>; <see cref="Mean"/>, <see cref="Std"/> and <see cref="MeanImage"/> are in that output order.</summary>
public sealed record ImagePreprocessing
{
    /// <summary>Preset name, for descriptions.</summary>
    public string Name { get; init; } = "custom";

    /// <summary>Side of the square crop: the model's height and width.</summary>
    public int CropSize { get; init; } = 224;

    /// <summary>The shorter image side after resizing (at least <see cref="CropSize"/>).</summary>
    public int ResizeShorter { get; init; } = 224;

    /// <summary>Multiplies the 0..255 pixel values first (1/255 gives 0..1).</summary>
    public float Scale { get; init; } = 1f / 255f;

    /// <summary>Per-channel mean subtracted after scaling (3 values).</summary>
    public IReadOnlyList<float> Mean { get; init; } = [0f, 0f, 0f];

    /// <summary>Per-channel divisor after the mean (3 values).</summary>
    public IReadOnlyList<float> Std { get; init; } = [1f, 1f, 1f];

    /// <summary>Give channels as B, G, R instead of R, G, B.</summary>
    public bool Bgr { get; init; }

    /// <summary>A per-pixel mean image [3, CropSize, CropSize] (CHW, output channel order) subtracted last, or null.</summary>
    public float[]? MeanImage { get; init; }

    /// <summary>torchvision's ImageNet preprocessing: shorter side 256, crop 224, 0..1, ImageNet mean/std, RGB.</summary>
    public static ImagePreprocessing ResNet { get; } = new()
    {
        Name = "resnet",
        CropSize = 224,
        ResizeShorter = 256,
        Scale = 1f / 255f,
        Mean = [0.485f, 0.456f, 0.406f],
        Std = [0.229f, 0.224f, 0.225f],
    };

    /// <summary>Raw 0..255 RGB values at <paramref name="size"/>×<paramref name="size"/> (shorter side resized to
    /// the crop), no normalisation.</summary>
    public static ImagePreprocessing Raw(int size = 224) => new() { Name = "raw", CropSize = size, ResizeShorter = size, Scale = 1f };

    /// <summary>What ML.NET's DnnImageFeaturizer feeds ResNet18.onnx: ResizeImages(224, 224) (IsoCrop, center),
    /// ExtractPixels (raw 0..255, planar RGB), then ResNetPreprocess.onnx (channels to BGR, minus a per-pixel mean
    /// image). The mean image is read by running <paramref name="preprocessModelPath"/> in ONNX Runtime, which also
    /// checks that the model is just that channel swap and subtraction.</summary>
    /// <param name="preprocessModelPath">ResNetPreprocess.onnx from Microsoft.ML.DnnImageFeaturizer.ResNet18.</param>
    /// <param name="runtime">Runtime options for the one-off session, or null.</param>
    public static ImagePreprocessing ResNet18MLNet(string preprocessModelPath, RuntimeOptions? runtime = null)
    {
        ArgumentNullException.ThrowIfNull(preprocessModelPath);
        if (!File.Exists(preprocessModelPath)) throw new DataSpecException($"ResNet preprocessing model {preprocessModelPath} does not exist");
        ModelRunner runner;
        try
        {
            runner = ModelRunner.Load(preprocessModelPath, runtime);
        }
        catch (OrtRuntimeException e)
        {
            throw new DataSpecException(e.Message, e);
        }
        using (runner)
        {
            var input = runner.Inputs.Count == 1 ? runner.Inputs[0] : null;
            if (input is null || input.ElementType != TensorElementType.Float || input.Rank != 4 || input.Dims[1] != 3
                || input.Dims[2] <= 0 || input.Dims[2] != input.Dims[3] || runner.OutputNames.Count != 1)
                throw new DataSpecException($"{preprocessModelPath} is not an image preprocessing model with one [1,3,S,S] float input and one output");
            var size = (int)input.Dims[2];
            var plane = size * size;
            long[] shape = [1, 3, size, size];

            // Zeros in: out = -mean. Channel constants R=1, G=2, B=3 in: a channel swap minus mean gives 3, 2, 1.
            var zeros = new float[3 * plane];
            var meanImage = Run(runner, input.Name, zeros, shape);
            if (meanImage.Length != 3 * plane) throw new DataSpecException($"{preprocessModelPath} does not give a [1,3,{size},{size}] output");
            for (var i = 0; i < meanImage.Length; i++) meanImage[i] = -meanImage[i];
            var probe = new float[3 * plane];
            for (var c = 0; c < 3; c++) probe.AsSpan(c * plane, plane).Fill(c + 1);
            var probed = Run(runner, input.Name, probe, shape);
            for (var c = 0; c < 3; c++)
            {
                var want = 3 - c;
                for (var i = c * plane; i < (c + 1) * plane; i++)
                    if (Math.Abs(probed[i] + meanImage[i] - want) > 1e-3f)
                        throw new DataSpecException($"{preprocessModelPath} is not an RGB-to-BGR swap minus a mean image; preset resnet18-mlnet cannot replicate it");
            }
            return new ImagePreprocessing
            {
                Name = "resnet18-mlnet",
                CropSize = size,
                ResizeShorter = size,
                Scale = 1f,
                Bgr = true,
                MeanImage = meanImage,
            };
        }
    }

    private static float[] Run(ModelRunner runner, string inputName, float[] data, long[] shape)
    {
        var outputs = runner.Run(new Dictionary<string, NamedTensor> { [inputName] = new NamedTensor(data, shape) });
        return outputs.Outputs[0].Data.ToArray();
    }

    internal void Validate()
    {
        if (CropSize < 1) throw new DataSpecException($"images size must be positive, got {CropSize}");
        if (ResizeShorter < CropSize) throw new DataSpecException($"images resize {ResizeShorter} is smaller than the crop size {CropSize}");
        if (Mean.Count != 3 || Std.Count != 3) throw new DataSpecException("images mean and std take 3 values each (one per channel)");
        foreach (var s in Std)
            if (!(s > 0)) throw new DataSpecException("images std values must be positive");
        if (MeanImage is not null && MeanImage.Length != 3 * CropSize * CropSize)
            throw new DataSpecException($"images mean image has {MeanImage.Length} values, [3,{CropSize},{CropSize}] needs {3 * CropSize * CropSize}");
    }
}
