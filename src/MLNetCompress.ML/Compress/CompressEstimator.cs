using Microsoft.ML;
using Microsoft.ML.Transforms.Onnx;
using MLNetCompress.Compression;
using MLNetCompress.ML.Data;
using MLNetCompress.Recipes;
using MLNetCompress.Reporting;
using MLNetCompress.Runtime;

namespace MLNetCompress.ML.Compress;

/// <summary>
/// Compresses an ONNX model inside an ML.NET pipeline. <see cref="GetOutputSchema"/> checks the input columns exactly as
/// <c>ApplyOnnxModel</c> does (it asks ML.NET's own estimator over the original model). <see cref="Fit"/> reads
/// calibration rows from the data, runs the <see cref="Recipe"/>, verifies the result in ONNX Runtime against the
/// original on the data's rows, and returns ML.NET's own <see cref="OnnxTransformer"/> over the compressed model, so
/// <c>Transform</c>, <c>Append</c> chains and <c>mlContext.Model.Save</c> / <c>Load</c> work unchanged.
/// </summary>
public sealed class CompressEstimator : IEstimator<OnnxTransformer>
{
    // ApplyOnnxModel's default protobuf recursion limit.
    private const int RecursionLimit = 100;

    private readonly TransformsCatalog _catalog;
    private OnnxScoringEstimator? _original;
    private CompressionReport? _report;

    internal CompressEstimator(TransformsCatalog catalog, CompressEstimatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Recipe, nameof(options.Recipe));
        ArgumentNullException.ThrowIfNull(options.OutputColumnNames, nameof(options.OutputColumnNames));
        ArgumentNullException.ThrowIfNull(options.InputColumnNames, nameof(options.InputColumnNames));
        if ((options.ModelFile is null) == (options.ModelBytes is null))
            throw new ArgumentException("give the model as ModelFile or as ModelBytes (exactly one).", nameof(options));
        if (options.ModelFile is not null && !File.Exists(options.ModelFile))
            throw new FileNotFoundException($"model file '{options.ModelFile}' does not exist.", options.ModelFile);
        if (options.OutputColumnNames.Length == 0) throw new ArgumentException("name at least one output column.", nameof(options));
        if (options.InputColumnNames.Length == 0) throw new ArgumentException("name at least one input column.", nameof(options));
        _catalog = catalog;
        Options = options;
    }

    /// <summary>The options.</summary>
    public CompressEstimatorOptions Options { get; }

    /// <summary>The compressed model's bytes after <see cref="Fit"/>; null before.</summary>
    public byte[]? CompressedModel { get; private set; }

    /// <summary>What the last <see cref="Fit"/> did: bytes before and after, passes, per-layer changes and the verifier's
    /// figures; null before.</summary>
    public CompressionResult? Result { get; private set; }

    /// <summary>The report of the last <see cref="Fit"/> (per-layer bytes, sparsity, clusters, error, weight histograms,
    /// the verifier's figures), built on first use from the original and the compressed model; null before Fit.
    /// It is the same report the CLI writes with <c>--report</c>.</summary>
    public CompressionReport? Report => _report ??= Result is null || CompressedModel is null
        ? null
        : CompressionReport.Build(Options.ModelBytes ?? File.ReadAllBytes(Options.ModelFile!), CompressedModel, Result);

    /// <summary>Checks the input columns as <c>ApplyOnnxModel</c> does and gives the output columns.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An input column is missing or has the wrong type (the message names the column and both types).</exception>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) => Original().GetOutputSchema(inputSchema);

    /// <summary>Compresses the model with calibration rows from <paramref name="input"/> and returns ML.NET's
    /// <see cref="OnnxTransformer"/> over the compressed model.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An input column is missing or has the wrong type.</exception>
    /// <exception cref="RecipeException">The recipe cannot run as written.</exception>
    /// <exception cref="CompressionException">A step failed or the compressed model missed the verification gate.</exception>
    public OnnxTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        // ML.NET's estimator over the original model is trivial: its Fit only checks the schema, as ApplyOnnxModel's would.
        Original().Fit(input);
        (Result, CompressedModel, _report) = (null, null, null);
        var runtime = new RuntimeOptions(GpuDeviceId: Options.GpuDeviceId, FallbackToCpu: Options.FallbackToCpu);

        byte[] original = Options.ModelBytes ?? File.ReadAllBytes(Options.ModelFile!);
        IReadOnlyList<MLNetCompress.Data.ModelInputInfo> inputs;
        bool onGpu;
        using (var runner = ModelRunner.Load(original, runtime with { GraphOptimizationLevel = Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_DISABLE_ALL }, Options.Log))
            (inputs, onGpu) = (runner.Inputs, runner.OnGpu);
        // ApplyOnnxModel feeds each model input from the column of the same name; only the named ones come from the data.
        var fed = inputs.Where(i => Options.InputColumnNames.Contains(i.Name, StringComparer.Ordinal)).ToList();
        var feed = new DataViewFeed(input, fed);

        string output = Options.OutputPath ?? Path.Combine(Path.GetTempPath(), $"mlnet-compress-{Guid.NewGuid():N}.onnx");
        try
        {
            var run = new RecipeRunOptions
            {
                OutputPath = output,
                Calibration = feed,
                MinCosine = Options.MinCosine,
                ProbeRows = Options.ProbeRows,
                Runtime = runtime,
                Log = Options.Log,
            };
            Result = Options.ModelFile is not null
                ? RecipeRunner.Run(Options.ModelFile, Options.Recipe, run, Options.Progress)
                : RecipeRunner.Run(original, Options.Recipe, run, Options.Progress);
            CompressedModel = File.ReadAllBytes(output);
        }
        finally
        {
            if (Options.OutputPath is null && File.Exists(output)) File.Delete(output);
        }

        // ML.NET's own transformer over the compressed bytes: it keeps them, so Save/Load need no file of ours.
        using var stream = new MemoryStream(CompressedModel, writable: false);
        // The device is the one our own session got: ML.NET's fallback catches only OnnxRuntimeException, not the
        // missing CUDA entry point of the CPU runtime package, so a CPU machine is given no GPU request at all.
        return _catalog.ApplyOnnxModel(Options.OutputColumnNames, Options.InputColumnNames, stream, Options.ShapeDictionary,
            onGpu ? Options.GpuDeviceId : null, Options.FallbackToCpu, RecursionLimit).Fit(input);
    }

    /// <summary>ML.NET's estimator over the original model, for the schema check (on the CPU: the schema does not depend on the device).</summary>
    private OnnxScoringEstimator Original()
    {
        if (_original is not null) return _original;
        if (Options.ModelFile is not null)
            return _original = _catalog.ApplyOnnxModel(Options.OutputColumnNames, Options.InputColumnNames, Options.ModelFile, Options.ShapeDictionary,
                gpuDeviceId: null, fallbackToCpu: false, RecursionLimit);
        using var stream = new MemoryStream(Options.ModelBytes!, writable: false);
        return _original = _catalog.ApplyOnnxModel(Options.OutputColumnNames, Options.InputColumnNames, stream, Options.ShapeDictionary,
            gpuDeviceId: null, fallbackToCpu: false, RecursionLimit);
    }
}
