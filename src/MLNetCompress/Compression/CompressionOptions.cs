using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;

namespace MLNetCompress.Compression;

/// <summary>Where <see cref="ModelCompressor"/> writes, and how it verifies before it does.</summary>
public sealed record CompressionOptions
{
    /// <summary>The file to write. It may not be the input model (or one of its external data files).</summary>
    public required string OutputPath { get; init; }

    /// <summary>Thresholds the compressed model must meet against the original (default: min cosine 0.99 per output).</summary>
    public VerifyOptions Verification { get; init; } = new();

    /// <summary>Probe rows built against the model's inputs; null for deterministic random probes.</summary>
    public IDataFeed? Probes { get; init; }

    /// <summary>Replace an existing output file (atomically). When false an existing output is an error.</summary>
    public bool Overwrite { get; init; } = true;

    /// <summary>Limits for reading the input; for a model given as bytes, <see cref="ModelReadOptions.BaseDirectory"/> locates its external data.</summary>
    public ModelReadOptions? Read { get; init; }

    /// <summary>How the output is written (external data past 2 GiB by default).</summary>
    public ModelWriteOptions? Write { get; init; }

    /// <summary>When a statically quantized model (<see cref="Quantization.Qdq.QdqQuantizationPass"/>) fails the cosine
    /// gate, find the layers responsible and remedy them (uint8 weights, then float) before giving up
    /// (<see cref="Quantization.Qdq.QdqGateRecovery"/>); what was done is in <see cref="CompressionResult.Notes"/>. On by default.</summary>
    public bool RecoverFailedQuantization { get; init; } = true;

    /// <summary>Receives one-line notes from the passes.</summary>
    public Action<string>? Log { get; init; }
}
