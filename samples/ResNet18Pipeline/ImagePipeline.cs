using Microsoft.ML;
using Microsoft.ML.Transforms.Onnx;
using MLNetCompress.ML;
using MLNetCompress.ML.Compress;
using MLNetCompress.Recipes;

namespace ResNet18Pipeline;

/// <summary>
/// The ML.NET image pipeline ML.NET's ResNet18 featurizer runs — LoadImages, ResizeImages(224, 224), ExtractPixels,
/// ResNetPreprocess.onnx (RGB to BGR minus the mean image), ResNet18.onnx — with ResNet18 applied as it is, or
/// compressed by a recipe when the pipeline is fitted.
/// </summary>
public static class ImagePipeline
{
    /// <summary>ResNet18's input and output names.</summary>
    public const string ResNetInput = "Input247", ResNetOutput = "Pooling395_Output_0";

    /// <summary>The 512 features the trainer reads.</summary>
    public const string Features = "Features";

    /// <summary>ResNet18.onnx from Microsoft.ML.DnnImageFeaturizer.ResNet18, copied beside the program.</summary>
    public static string ResNet18 => Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx");

    /// <summary>ResNetPreprocess.onnx from the same package.</summary>
    public static string ResNetPreprocess => Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNetPrepOnnx", "ResNetPreprocess.onnx");

    /// <summary>The int8 recipe the sample uses: onnx-samples/recipes/int8-speed.json.</summary>
    public static Recipe Int8Recipe(string subset) => Recipe.Load(Path.Combine(subset, "..", "recipes", "int8-speed.json"));

    /// <summary>Images in <paramref name="imageFolder"/> to the ResNet18 input column, as ML.NET's DnnImageFeaturizer prepares them.</summary>
    public static IEstimator<ITransformer> Preprocess(MLContext ml, string imageFolder) =>
        ml.Transforms.LoadImages("Image", imageFolder, nameof(ImageRow.ImagePath))
            .Append(ml.Transforms.ResizeImages("Image", 224, 224))
            .Append(ml.Transforms.ExtractPixels("OriginalInput", "Image"))
            .Append(ml.Transforms.ApplyOnnxModel("PreprocessedInput", "OriginalInput", ResNetPreprocess))
            .Append(ml.Transforms.CopyColumns(ResNetInput, "PreprocessedInput"));

    /// <summary>The original ResNet18 featurizer.</summary>
    public static IEstimator<OnnxTransformer> Original(MLContext ml) => ml.Transforms.ApplyOnnxModel([ResNetOutput], [ResNetInput], ResNet18);

    /// <summary>ResNet18 compressed by <paramref name="recipe"/> on the rows it is fitted on.</summary>
    public static CompressEstimator Compressed(MLContext ml, Recipe recipe) => ml.Transforms.Compress(ResNet18, recipe, [ResNetOutput], [ResNetInput]);

    /// <summary>The whole featurizer: images to the <see cref="Features"/> column, through <paramref name="resnet"/>.</summary>
    public static IEstimator<ITransformer> Featurizer(MLContext ml, string imageFolder, IEstimator<OnnxTransformer> resnet) =>
        Preprocess(ml, imageFolder).Append(resnet).Append(ml.Transforms.CopyColumns(Features, ResNetOutput));

    /// <summary>The multiclass classifier on the 512 features: class names to keys, then SDCA maximum entropy.</summary>
    public static IEstimator<ITransformer> Trainer(MLContext ml) =>
        ml.Transforms.Conversion.MapValueToKey("LabelKey", nameof(ImageRow.Label))
            .Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy("LabelKey", Features));

    /// <summary>Featurizer, then <see cref="Trainer"/>; the features are cached so that the trainer's passes over the
    /// data do not run ResNet18 again.</summary>
    public static IEstimator<ITransformer> Classifier(MLContext ml, string imageFolder, IEstimator<OnnxTransformer> resnet) =>
        Featurizer(ml, imageFolder, resnet).AppendCacheCheckpoint(ml).Append(Trainer(ml));
}
