using System.Globalization;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.KernelSafety;
using MLNetCompress.Quantization.NBits;

namespace MLNetCompress.Quantization.Dynamic;

/// <summary>What <see cref="DynamicQuantizationPass"/> decided: the MatMuls it rewrites (weights already
/// quantized) and the ones it leaves, each with the reason.</summary>
public sealed class DynamicQuantizationPlan
{
    internal DynamicQuantizationPlan(IReadOnlyList<DynamicMatMul> matMuls, IReadOnlyList<string> skipped, IReadOnlyList<QuantizedEmbedding>? embeddings = null)
    {
        MatMuls = matMuls;
        Skipped = skipped;
        Embeddings = embeddings ?? [];
    }

    /// <summary>The Gather tables stored int8 per row (with <see cref="DynamicQuantizationOptions.QuantizeEmbeddings"/>).</summary>
    public IReadOnlyList<QuantizedEmbedding> Embeddings { get; }

    /// <summary>The MatMuls to rewrite, in graph order.</summary>
    public IReadOnlyList<DynamicMatMul> MatMuls { get; }

    /// <summary>One line per MatMul left as it is, saying why.</summary>
    public IReadOnlyList<string> Skipped { get; }
}

/// <summary>One MatMul the pass rewrites to DynamicQuantizeLinear + MatMulInteger, with its int8 weight.</summary>
public sealed class DynamicMatMul
{
    internal DynamicMatMul(GraphScope scope, NodeProto node, string weight, long[] shape, sbyte[] quantized, float[] scales, float maxAbsError,
        PairSumOutcome safety)
    {
        Scope = scope; Node = node; Weight = weight; ShapeArray = shape; Quantized = quantized; Scales = scales; MaxAbsError = maxAbsError;
        Safety = safety;
    }

    /// <summary>A MatMul whose weight is clustered: the index tensor is kept and the codebook quantized
    /// (<see cref="Quantized"/> holds the int8 codebook, k entries per scale).</summary>
    internal DynamicMatMul(GraphScope scope, NodeProto node, ClusteredWeight clustered, QuantizedCodebook codebook)
        : this(scope, node, clustered.Name, clustered.Dims, codebook.Values, codebook.Scales, codebook.MaxAbsError, codebook.Safety)
    {
        Clustered = clustered;
        Codebook = codebook;
    }

    internal ClusteredWeight? Clustered { get; }

    internal QuantizedCodebook? Codebook { get; }

    /// <summary>Centroids of the weight's codebook when it is clustered, else null.</summary>
    public int? Clusters => Clustered?.Clusters;

    /// <summary>The MatMul's label (its name, or op and outputs).</summary>
    public string NodeName => GraphScope.NodeLabel(Node);

    /// <summary>The float weight's value name.</summary>
    public string Weight { get; }

    /// <summary>The graph it is in.</summary>
    public string Graph => Scope.Path;

    /// <summary>The weight's shape [K, N].</summary>
    public IReadOnlyList<long> Shape => ShapeArray;

    /// <summary>Number of weight scales: N per channel, or 1.</summary>
    public int ScaleCount => Scales.Length;

    /// <summary>Largest <c>|w - q * scale|</c> over the weight.</summary>
    public float MaxAbsError { get; }

    /// <summary>Whether its u8×s8 pair sums could clip on a CPU without VNNI, and what the guard did.</summary>
    public PairSumOutcome Safety { get; }

    /// <summary>True when the weight is written as uint8 with zero point 128 (<see cref="PairSumGuard.Uint8Weights"/>).</summary>
    public bool StoredAsUInt8 => Safety.Treated && Safety.Guard == PairSumGuard.Uint8Weights && Clustered is null;

    /// <summary>Payload bytes before (float; a clustered weight: its indices and float codebook).</summary>
    public long BytesBefore => Clustered is { } c ? c.StoredBytes : 4L * Quantized.LongLength;

    /// <summary>Payload bytes after: int8 values (a clustered weight: its indices, the int8 codebook and the channel
    /// offsets), float scales and int8 zero points.</summary>
    public long BytesAfter => Quantized.LongLength + 5L * Scales.Length
        + (Clustered is { } c ? c.IndexBytes + (Codebook!.Axis is null ? 0 : OnnxDataTypes.ByteCount(c.IndexType, Scales.Length)) : 0);

    internal GraphScope Scope { get; }

    internal NodeProto Node { get; }

    internal long[] ShapeArray { get; }

    internal sbyte[] Quantized { get; }

    internal float[] Scales { get; }

    /// <summary>The storage after, in words.</summary>
    public string StorageAfter => (Clustered is { } c
        ? $"clustered, codebook quantized: {c.Clusters} int8 centroids{(Scales.Length > 1 ? $" per column ({Scales.Length} float scales)" : ", 1 float scale")}, index tensor kept, dynamic uint8 activations"
        : (StoredAsUInt8 ? "uint8" : "int8") + (Scales.Length > 1
            ? $" per-column ({Scales.Length} float scales), dynamic uint8 activations"
            : " per-tensor (1 float scale), dynamic uint8 activations"))
        + (Safety.Describe() is { } d ? "; " + d : "");

    /// <summary>The row for the compression report.</summary>
    public LayerChange ToLayerChange() =>
        new(Weight, "MatMul", Graph, ShapeArray, "float", StorageAfter, BytesBefore, BytesAfter, MaxAbsError);

    /// <summary>One line: node, weight, shape, storage and error.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"MatMul '{NodeName}' ({Weight} in {Graph}): {(Clustered is null ? "" : "clustered ")}float[{string.Join(",", ShapeArray)}] -> {StorageAfter}, {BytesBefore} -> {BytesAfter} bytes, max abs error {MaxAbsError:G3}");
}
