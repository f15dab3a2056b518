using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Recipes.Steps;

namespace MLNetCompress.Recipes;

/// <summary>
/// Runs a <see cref="Recipe"/> on a model through <see cref="ModelCompressor"/>: the steps become passes (all built, so a
/// bad value or missing data fails before anything is computed), the result is loaded in ONNX Runtime and compared with
/// the original, and only then written, atomically.
/// </summary>
public static class RecipeRunner
{
    /// <summary>Runs the recipe on a model file.</summary>
    /// <param name="modelPath">The model (only read).</param>
    /// <param name="recipe">The recipe.</param>
    /// <param name="options">Output path, calibration data, verification gate, runtime.</param>
    /// <param name="progress">Receives progress; may be null.</param>
    /// <param name="cancellationToken">Stops the run between steps (nothing is written).</param>
    /// <exception cref="RecipeException">A step is bad or needs calibration data that was not given.</exception>
    /// <exception cref="CompressionException">Loading, a pass, verification or writing failed; nothing was written.</exception>
    public static CompressionResult Run(string modelPath, Recipe recipe, RecipeRunOptions options,
        IProgress<CompressionProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        ArgumentNullException.ThrowIfNull(recipe);
        ArgumentNullException.ThrowIfNull(options);
        if (!File.Exists(modelPath)) throw new CompressionException(CompressionStage.Load, $"input model '{modelPath}' does not exist.");
        var passes = Plan(() => ModelGraph.Load(modelPath), modelPath, recipe, options);
        return ModelCompressor.Compress(modelPath, passes, options.ToCompressionOptions(recipe), progress, cancellationToken);
    }

    /// <summary>Runs the recipe on a serialized model.</summary>
    /// <param name="model">The model's bytes.</param>
    /// <param name="recipe">The recipe.</param>
    /// <param name="options">Output path, calibration data, verification gate, runtime.</param>
    /// <param name="progress">Receives progress; may be null.</param>
    /// <param name="cancellationToken">Stops the run between steps (nothing is written).</param>
    /// <exception cref="RecipeException">A step is bad or needs calibration data that was not given.</exception>
    /// <exception cref="CompressionException">Loading, a pass, verification or writing failed; nothing was written.</exception>
    public static CompressionResult Run(byte[] model, Recipe recipe, RecipeRunOptions options,
        IProgress<CompressionProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(recipe);
        ArgumentNullException.ThrowIfNull(options);
        var passes = Plan(() => ModelGraph.FromBytes(model), "the model bytes", recipe, options);
        return ModelCompressor.Compress(model, passes, options.ToCompressionOptions(recipe), progress, cancellationToken);
    }

    private static IReadOnlyList<Onnx.Passes.IGraphPass> Plan(Func<ModelGraph> load, string what, Recipe recipe, RecipeRunOptions options)
    {
        ModelGraph graph;
        try
        {
            graph = load();
        }
        catch (Exception e) when (e is OnnxFormatException or IOException or UnauthorizedAccessException)
        {
            throw new CompressionException(CompressionStage.Load, $"cannot read {what}: {e.Message.Split('\n')[0].TrimEnd('.')}", e);
        }
        // Preparation would fold an already-quantized model's weight DequantizeLinear nodes back to float: refuse first.
        if (recipe.Steps.Any(s => s is QuantizeStaticStep or QuantizeDynamicStep or MatMulNBitsStep) && QuantizedModelDetector.Describe(graph) is { } already)
            throw new CompressionException(CompressionStage.Load, $"{already.TrimEnd('.')}; nothing was written.");
        var notes = new List<string>();
        var passes = recipe.Passes(graph.OnnxOpset, options.Calibration, options.Runtime, notes);
        foreach (var note in notes) options.Log?.Invoke(note);
        return passes;
    }
}
