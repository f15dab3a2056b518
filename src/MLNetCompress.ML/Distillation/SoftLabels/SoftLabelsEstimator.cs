using Microsoft.ML;
using MLNetCompress.Runtime;

namespace MLNetCompress.ML.Distillation;

/// <summary>Options of <see cref="SoftLabelsEstimator"/>.</summary>
public sealed record SoftLabelsEstimatorOptions
{
    /// <summary>The teacher .onnx files: one, or several for an ensemble (same classes, same input size).</summary>
    public required IReadOnlyList<string> Teachers { get; init; }

    /// <summary>The column the soft labels go to (float vector of length C).</summary>
    public string OutputColumnName { get; init; } = SoftLabelFile.SoftLabelColumn;

    /// <summary>The float vector column fed to the teachers (its length must be the teacher input's size per row).</summary>
    public string InputColumnName { get; init; } = SoftLabelFile.FeaturesColumn;

    /// <summary>The teacher output holding [N, C] logits or log-probabilities; null for the first output.</summary>
    public string? TeacherOutputName { get; init; }

    /// <summary>The temperature T of softmax(z / T), &gt; 0.</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>How the teachers of an ensemble are combined.</summary>
    public SoftLabelCombine Combine { get; init; } = SoftLabelCombine.Arithmetic;

    /// <summary>CUDA device for ONNX Runtime, or null for the CPU.</summary>
    public int? GpuDeviceId { get; init; }

    /// <summary>Run on the CPU when the CUDA device cannot be used.</summary>
    public bool FallbackToCpu { get; init; } = true;
}

/// <summary>Adds the teachers' soft labels softmax(z / T) (combined over an ensemble) as a float vector column. Built
/// from public ML.NET pieces: each teacher runs in ML.NET's OnnxTransformer with a soft-label head added to its
/// graph (its input read from a flat float vector column), and an ensemble is joined by a small ONNX combiner model;
/// so <c>Fit</c>, <c>Transform</c>, <c>Append</c> chains and <c>mlContext.Model.Save</c> work as for any estimator.</summary>
public sealed class SoftLabelsEstimator : IEstimator<ITransformer>
{
    private readonly IEstimator<ITransformer> _inner;

    internal SoftLabelsEstimator(MLContext ml, SoftLabelsEstimatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(ml);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Teachers.Count == 0) throw new ArgumentException("give at least one teacher model", nameof(options));
        if (!(options.Temperature > 0) || double.IsInfinity(options.Temperature))
            throw new ArgumentOutOfRangeException(nameof(options), options.Temperature, "the temperature must be a finite number > 0");
        foreach (var t in options.Teachers)
            if (!File.Exists(t)) throw new FileNotFoundException($"teacher model '{t}' does not exist", t);
        Options = options;

        if (options.Teachers.Count == 1)
        {
            var (model, classes) = SoftLabelGraphs.Teacher(options.Teachers[0], options.TeacherOutputName, options.Temperature, options.InputColumnName, options.OutputColumnName, log: false);
            Classes = classes;
            _inner = Apply(ml, options.OutputColumnName, options.InputColumnName, model, options);
            return;
        }
        // Each teacher writes its (log-)probabilities to a column of its own; the combiner joins them and the
        // helper columns are dropped.
        var geometric = options.Combine == SoftLabelCombine.Geometric;
        var columns = new List<string>();
        IEstimator<ITransformer>? chain = null;
        var classCounts = new HashSet<int>();
        for (var i = 0; i < options.Teachers.Count; i++)
        {
            var column = $"{options.OutputColumnName}.teacher{i}";
            var (model, classes) = SoftLabelGraphs.Teacher(options.Teachers[i], options.TeacherOutputName, options.Temperature, options.InputColumnName, column, log: geometric);
            classCounts.Add(classes);
            columns.Add(column);
            var step = Apply(ml, column, options.InputColumnName, model, options);
            chain = chain is null ? step : chain.Append(step);
        }
        if (classCounts.Count > 1)
            throw new SoftLabelException($"the teachers give different class counts ({string.Join(", ", classCounts)}); an ensemble needs teachers over the same classes");
        Classes = classCounts.Single();
        var combiner = SoftLabelGraphs.Combiner(columns, options.OutputColumnName, Classes, options.Combine);
        var combine = ml.Transforms.ApplyOnnxModel([options.OutputColumnName], columns.ToArray(), new MemoryStream(combiner), Device(options), options.FallbackToCpu);
        _inner = chain!.Append(combine).Append(ml.Transforms.DropColumns(columns.ToArray()));
    }

    /// <summary>The options this estimator was made with.</summary>
    public SoftLabelsEstimatorOptions Options { get; }

    /// <summary>Number of classes C (0 when the teacher's output shape leaves it open).</summary>
    public int Classes { get; }

    /// <summary>Loads the teachers in ONNX Runtime (through ML.NET) for <paramref name="input"/>'s schema.</summary>
    public ITransformer Fit(IDataView input) => _inner.Fit(input);

    /// <summary>The schema after the soft-label column is added.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) => _inner.GetOutputSchema(inputSchema);

    private static IEstimator<ITransformer> Apply(MLContext ml, string output, string input, byte[] model, SoftLabelsEstimatorOptions options) =>
        ml.Transforms.ApplyOnnxModel(output, input, new MemoryStream(model), Device(options), options.FallbackToCpu);

    // ML.NET's own CPU fallback misses the CPU runtime package's absent CUDA entry point: ask ONNX Runtime first.
    private static int? Device(SoftLabelsEstimatorOptions options) =>
        OrtSessionFactory.UsableGpuDevice(new RuntimeOptions(GpuDeviceId: options.GpuDeviceId, FallbackToCpu: options.FallbackToCpu));
}
