using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Recipes.Steps;
using MLNetCompress.Reporting;

namespace MLNetCompress.Recipes;

/// <summary>
/// Runs a <see cref="Recipe"/> on a model through <see cref="ModelCompressor"/>: the steps become passes (all built, so a
/// bad value or missing data fails before anything is computed), the result is loaded in ONNX Runtime and compared with
/// the original, and only then written, atomically. The model's serialized size is measured after each step, so the
/// result's <see cref="CompressionResult.Stages"/> (and the report) show what every step saved.
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
        long original = OnnxModelIO.SizeOnDisk(modelPath);
        var stages = new List<SizeStage> { SizeStage.Of(SizeStage.OriginalName, original, original, Path.GetFileName(modelPath)) };
        var passes = Plan(() => ModelGraph.Load(modelPath), modelPath, recipe, options, stages);
        var result = ModelCompressor.Compress(modelPath, passes, options.ToCompressionOptions(recipe), progress, cancellationToken);
        return WithStages(result, stages);
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
        var stages = new List<SizeStage> { SizeStage.Of(SizeStage.OriginalName, model.LongLength, model.LongLength) };
        var passes = Plan(() => ModelGraph.FromBytes(model), "the model bytes", recipe, options, stages);
        var result = ModelCompressor.Compress(model, passes, options.ToCompressionOptions(recipe), progress, cancellationToken);
        return WithStages(result, stages);
    }

    /// <summary>The run's stages, plus the written file when external data made it differ from the last step's serialized size.</summary>
    private static CompressionResult WithStages(CompressionResult result, List<SizeStage> stages)
    {
        if (stages[^1].Bytes != result.BytesAfter)
            stages.Add(SizeStage.Of(SizeStage.WrittenName, result.BytesAfter, stages[0].Bytes, Path.GetFileName(result.OutputPath) + " with its external data"));
        return result with { Stages = stages };
    }

    private static List<IGraphPass> Plan(Func<ModelGraph> load, string what, Recipe recipe, RecipeRunOptions options, List<SizeStage> stages)
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
        var groups = recipe.PassesByStep(graph.OnnxOpset, options.Calibration, options.Runtime, notes);
        foreach (var note in notes) options.Log?.Invoke(note);
        // The last pass of each step measures the model once the step is done; a step merged into the next (prune into
        // reconstruct) has no pass of its own and shares the next one's row.
        var passes = new List<IGraphPass>();
        int first = 0;
        foreach (var (index, step, group) in groups)
        {
            if (group.Count == 0) continue;
            string name = first == index ? $"step {index + 1}: {step.Name}"
                : $"steps {first + 1}-{index + 1}: {string.Join(" + ", groups.Skip(first).Take(index - first + 1).Select(g => g.Step.Name))}";
            first = index + 1;
            var probe = new StageProbe(name, string.Join(", ", group.Select(p => p.Name)), stages);
            passes.AddRange(group.Take(group.Count - 1));
            passes.Add(group[^1] is ILayerReportingPass lp ? new MeasuredLayerPass(lp, probe) : new MeasuredPass(group[^1], probe));
        }
        return passes;
    }

    /// <summary>Records the model's serialized size (what <see cref="ModelGraph.ToBytes"/> would write) as a stage.</summary>
    private sealed class StageProbe(string name, string detail, List<SizeStage> stages)
    {
        public void Measure(ModelGraph graph)
        {
            long inline = ExternalData.InlineSize(graph.Model);
            // Past protobuf's 2 GiB the model is written with external data; its tensor bytes are the measure then.
            long bytes = inline > int.MaxValue ? inline : OnnxModelIO.WithoutUnreadIr3Initializers(graph.Model).CalculateSize();
            // A step run again (the verification gate's recovery of a quantization step) replaces its row.
            stages.RemoveAll(s => s.Name == name);
            stages.Add(SizeStage.Of(name, bytes, stages[0].Bytes, detail));
        }
    }

    private sealed class MeasuredPass(IGraphPass pass, StageProbe probe) : IGraphPass, IPassWrapper
    {
        public string Name => pass.Name;

        public IGraphPass Inner => pass;

        public IGraphPass Wrap(IGraphPass inner) => inner is ILayerReportingPass lp ? new MeasuredLayerPass(lp, probe) : new MeasuredPass(inner, probe);

        public PassResult Run(ModelGraph graph, PassContext context)
        {
            var result = pass.Run(graph, context);
            probe.Measure(graph);
            return result;
        }
    }

    /// <summary>Keeps <see cref="ILayerReportingPass"/> visible, so <see cref="ModelCompressor"/> still collects the pass's rows.</summary>
    private sealed class MeasuredLayerPass(ILayerReportingPass pass, StageProbe probe) : ILayerReportingPass, IPassWrapper
    {
        public string Name => pass.Name;

        public IGraphPass Inner => pass;

        public IGraphPass Wrap(IGraphPass inner) => inner is ILayerReportingPass lp ? new MeasuredLayerPass(lp, probe) : new MeasuredPass(inner, probe);

        public PassResult Run(ModelGraph graph, PassContext context)
        {
            var result = pass.Run(graph, context);
            probe.Measure(graph);
            return result;
        }

        public PassResult Run(ModelGraph graph, PassContext context, ICollection<LayerChange> layers)
        {
            var result = pass.Run(graph, context, layers);
            probe.Measure(graph);
            return result;
        }
    }
}
