using MLNetCompress.Compression;
using MLNetCompress.Recipes;

namespace MLNetCompress.ML.Compress;

/// <summary>Options of <see cref="CompressEstimator"/>: the model, the recipe, the columns, and where it runs.</summary>
public sealed record CompressEstimatorOptions
{
    /// <summary>The ONNX model file to compress (only read). Give this or <see cref="ModelBytes"/>.</summary>
    public string? ModelFile { get; init; }

    /// <summary>The serialized ONNX model to compress. Give this or <see cref="ModelFile"/>.</summary>
    public byte[]? ModelBytes { get; init; }

    /// <summary>The recipe to run, e.g. <c>Recipe.Load("onnx-samples/recipes/int8-speed.json")</c>.</summary>
    public required Recipe Recipe { get; init; }

    /// <summary>The model outputs to produce as columns (their ONNX names, as in <c>ApplyOnnxModel</c>).</summary>
    public required string[] OutputColumnNames { get; init; }

    /// <summary>The columns that feed the model's inputs (their ONNX names, as in <c>ApplyOnnxModel</c>).</summary>
    public required string[] InputColumnNames { get; init; }

    /// <summary>Fixed shapes for inputs or outputs with free dims, passed on to <c>ApplyOnnxModel</c>; may be null.</summary>
    public IDictionary<string, int[]>? ShapeDictionary { get; init; }

    /// <summary>The CUDA device for calibration, verification and the returned transformer; null for the CPU.</summary>
    public int? GpuDeviceId { get; init; }

    /// <summary>Run on the CPU when the CUDA device cannot be used (true), or fail (false, ML.NET's default).</summary>
    public bool FallbackToCpu { get; init; }

    /// <summary>Overrides the recipe's verification gate (lowest per-row cosine of every output with the original).</summary>
    public double? MinCosine { get; init; }

    /// <summary>Rows of the Fit data the verifier compares the models on (at most).</summary>
    public int ProbeRows { get; init; } = 8;

    /// <summary>Also write the compressed model to this file; null keeps it in memory only (<see cref="CompressEstimator.CompressedModel"/>).</summary>
    public string? OutputPath { get; init; }

    /// <summary>Receives progress of the compression run; may be null.</summary>
    public IProgress<CompressionProgress>? Progress { get; init; }

    /// <summary>Receives one-line notes (opset upgrades, skipped layers); may be null.</summary>
    public Action<string>? Log { get; init; }
}
