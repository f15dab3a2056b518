using System.Globalization;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization.NBits;

/// <summary>What <see cref="MatMulNBitsPass"/> decided: the MatMuls it rewrites (weights already quantized), the Gather
/// tables it quantizes, and what it leaves, each with the reason.</summary>
public sealed class MatMulNBitsPlan
{
    internal MatMulNBitsPlan(IReadOnlyList<NBitsMatMul> matMuls, IReadOnlyList<QuantizedEmbedding> embeddings, IReadOnlyList<string> skipped)
    {
        MatMuls = matMuls;
        Embeddings = embeddings;
        Skipped = skipped;
    }

    /// <summary>The MatMuls to rewrite, in graph order.</summary>
    public IReadOnlyList<NBitsMatMul> MatMuls { get; }

    /// <summary>The Gather tables to quantize.</summary>
    public IReadOnlyList<QuantizedEmbedding> Embeddings { get; }

    /// <summary>One line per MatMul or table left as it is, saying why.</summary>
    public IReadOnlyList<string> Skipped { get; }
}

/// <summary>One MatMul the pass rewrites to com.microsoft.MatMulNBits, with its quantized weight.</summary>
public sealed class NBitsMatMul
{
    internal NBitsMatMul(GraphScope scope, NodeProto node, string weight, BlockQuantizedWeight quantized, NBitsAlgorithm algorithm)
    {
        Scope = scope; Node = node; Weight = weight; Quantized = quantized; Algorithm = algorithm;
    }

    /// <summary>The MatMul's label (its name, or op and outputs).</summary>
    public string NodeName => GraphScope.NodeLabel(Node);

    /// <summary>The float weight's value name.</summary>
    public string Weight { get; }

    /// <summary>The graph it is in.</summary>
    public string Graph => Scope.Path;

    /// <summary>The quantized weight.</summary>
    public BlockQuantizedWeight Quantized { get; }

    /// <summary>How its values were chosen (GPTQ falls back to round to nearest where it has no statistics).</summary>
    public NBitsAlgorithm Algorithm { get; }

    /// <summary>Payload bytes before (float).</summary>
    public long BytesBefore => 4L * Quantized.K * Quantized.N;

    /// <summary>Payload bytes after: packed values, scales and zero points.</summary>
    public long BytesAfter => Quantized.StoredBytes;

    internal GraphScope Scope { get; }

    internal NodeProto Node { get; }

    /// <summary>The storage after, in words.</summary>
    public string StorageAfter => string.Create(CultureInfo.InvariantCulture,
        $"{Quantized.Bits}-bit MatMulNBits, blocks of {Quantized.BlockSize}, {(Quantized.Symmetric ? "symmetric" : "zero points")}, {(Algorithm == NBitsAlgorithm.Gptq ? "GPTQ" : "round to nearest")}");

    /// <summary>The row for the compression report.</summary>
    public LayerChange ToLayerChange() =>
        new(Weight, "MatMul", Graph, [Quantized.K, Quantized.N], "float", StorageAfter, BytesBefore, BytesAfter, Quantized.MaxAbsError);

    /// <summary>One line: node, weight, shape, storage and error.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"MatMul '{NodeName}' ({Weight} in {Graph}): float[{Quantized.K},{Quantized.N}] -> {StorageAfter}, {BytesBefore} -> {BytesAfter} bytes, max abs error {Quantized.MaxAbsError:G3}");
}
