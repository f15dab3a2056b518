using Microsoft.ML;
using MLNetCompress.ML.Compress;
using MLNetCompress.Recipes;

namespace MLNetCompress.ML;

/// <summary>
/// <c>mlContext.Transforms.Compress(...)</c>: an estimator that compresses an ONNX model by a <see cref="Recipe"/> when
/// fitted, with calibration rows from the data, and gives ML.NET's own <c>OnnxTransformer</c> over the result.
/// </summary>
public static class CompressCatalog
{
    /// <summary>Compresses <paramref name="modelFile"/> by <paramref name="recipe"/> when fitted.</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="modelFile">The ONNX model (only read).</param>
    /// <param name="recipe">The recipe, e.g. <c>Recipe.Load("onnx-samples/recipes/int8-speed.json")</c>.</param>
    /// <param name="outputColumnNames">The model outputs to produce, by their ONNX names.</param>
    /// <param name="inputColumnNames">The columns that feed the model, by the model's input names.</param>
    /// <param name="gpuDeviceId">CUDA device for calibration and the returned transformer; null for the CPU.</param>
    /// <param name="fallbackToCpu">Use the CPU when the CUDA device cannot be used.</param>
    public static CompressEstimator Compress(this TransformsCatalog catalog, string modelFile, Recipe recipe,
        string[] outputColumnNames, string[] inputColumnNames, int? gpuDeviceId = null, bool fallbackToCpu = false) =>
        new(catalog, new CompressEstimatorOptions
        {
            ModelFile = modelFile,
            Recipe = recipe,
            OutputColumnNames = outputColumnNames,
            InputColumnNames = inputColumnNames,
            GpuDeviceId = gpuDeviceId,
            FallbackToCpu = fallbackToCpu,
        });

    /// <summary>Compresses the model read from <paramref name="model"/> (read to its end now) by <paramref name="recipe"/> when fitted.</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="model">A stream holding the ONNX model.</param>
    /// <param name="recipe">The recipe.</param>
    /// <param name="outputColumnNames">The model outputs to produce, by their ONNX names.</param>
    /// <param name="inputColumnNames">The columns that feed the model, by the model's input names.</param>
    /// <param name="gpuDeviceId">CUDA device for calibration and the returned transformer; null for the CPU.</param>
    /// <param name="fallbackToCpu">Use the CPU when the CUDA device cannot be used.</param>
    public static CompressEstimator Compress(this TransformsCatalog catalog, Stream model, Recipe recipe,
        string[] outputColumnNames, string[] inputColumnNames, int? gpuDeviceId = null, bool fallbackToCpu = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var copy = new MemoryStream();
        model.CopyTo(copy);
        return new(catalog, new CompressEstimatorOptions
        {
            ModelBytes = copy.ToArray(),
            Recipe = recipe,
            OutputColumnNames = outputColumnNames,
            InputColumnNames = inputColumnNames,
            GpuDeviceId = gpuDeviceId,
            FallbackToCpu = fallbackToCpu,
        });
    }

    /// <summary>Compresses a model as <paramref name="options"/> say when fitted.</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="options">The model, recipe, columns, device, gate, progress.</param>
    public static CompressEstimator Compress(this TransformsCatalog catalog, CompressEstimatorOptions options) => new(catalog, options);
}
