using System.Globalization;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization.NBits;

/// <summary>How a constant Gather table (word embeddings) is stored.</summary>
public enum EmbeddingScheme
{
    /// <summary>Left in float.</summary>
    None,

    /// <summary>int8 per row (symmetric): <c>Gather(q) → Cast → Mul(Gather(scale))</c>, plain ai.onnx ops; only the
    /// gathered rows are dequantized at run time, so memory stays int8 too.</summary>
    Int8PerRow,

    /// <summary>Blocks along the row, 4 bits a value: <c>com.microsoft.GatherBlockQuantized</c> (int4, or uint4 with
    /// zero points).</summary>
    Int4Blocked,
}

/// <summary>
/// Finds and rewrites the large constant tables read by Gather (word and position embeddings): an option of
/// <see cref="Dynamic.DynamicQuantizationPass"/> (int8) and <see cref="MatMulNBitsPass"/> (4-bit). A table qualifies
/// when it is a float rank-2 initializer of the Gather's graph, every reader is an ai.onnx Gather on axis 0 with
/// computed indices, and it is neither a graph input nor output.
/// </summary>
internal static class EmbeddingQuantization
{
    public static List<QuantizedEmbedding> Plan(ModelGraph graph, EmbeddingScheme scheme, long minElements, int blockSize, bool symmetric,
        IReadOnlySet<string> exclude, List<string> skipped, CancellationToken cancellation)
    {
        var planned = new List<QuantizedEmbedding>();
        if (scheme == EmbeddingScheme.None) return planned;
        foreach (var scope in graph.Scopes)
        {
            var tables = scope.Nodes.Where(n => n.OpType == "Gather" && GraphEdits.IsOnnxDomain(n) && n.Input.Count == 2)
                .Select(n => n.Input[0]).Distinct(StringComparer.Ordinal).ToList();
            foreach (var name in tables)
            {
                cancellation.ThrowIfCancellationRequested();
                var tensor = scope.Initializer(name);
                if (tensor is null || OnnxDataTypes.FromWire(tensor.DataType) != OnnxDataType.Float || tensor.Dims.Count != 2) continue;
                var readers = scope.Consumers(name);
                string label = $"Gather table '{name}' in {scope.Path}";
                if (readers.Any(r => r.OpType != "Gather" || !GraphEdits.IsOnnxDomain(r) || r.Input[0] != name || r.Input.Count != 2
                                     || GraphEdits.Int(r, "axis", 0) != 0 || GraphEdits.Constant(scope, r.Input[1]) is not null))
                {
                    skipped.Add($"{label}: it is also read by something other than a Gather on axis 0 with computed indices.");
                    continue;
                }
                if (readers.Any(r => exclude.Contains(r.Name) || exclude.Contains(GraphScope.NodeLabel(r)))) { skipped.Add($"{label}: excluded by name."); continue; }
                long rows = tensor.Dims[0], width = tensor.Dims[1];
                if (rows * width < minElements) { skipped.Add($"{label}: {rows * width} elements, below the embedding minimum {minElements}."); continue; }
                if (scope.IsGraphOutput(name) || (graph.IrVersion >= 4 && scope.Proto.Input.Any(i => i.Name == name)))
                {
                    skipped.Add($"{label}: it is also a graph input or output; left as it is.");
                    continue;
                }
                var values = TensorData.ToFloatArray(tensor);
                if (values.Any(v => !float.IsFinite(v))) { skipped.Add($"{label}: it holds NaN or infinite values."); continue; }
                if (scheme == EmbeddingScheme.Int8PerRow)
                {
                    var q = new sbyte[values.Length];
                    var scales = new float[rows];
                    SymmetricInt8.TryQuantize(values, [rows, width], 0, q, scales, out float error);
                    planned.Add(new QuantizedEmbedding(scope, name, [rows, width], scheme, 8, 0, q, null, scales, error));
                    continue;
                }
                int block = blockSize;
                while (block >= 16 && width % block != 0) block /= 2;
                if (block < 16) { skipped.Add($"{label}: its width {width} is not a multiple of 16, the smallest GatherBlockQuantized block."); continue; }
                // GatherBlockQuantized quantizes along the last axis: as a [width, rows] weight, the blocks run along width.
                var transposed = new float[values.Length];
                for (long r = 0; r < rows; r++)
                    for (long c = 0; c < width; c++) transposed[c * rows + r] = values[r * width + c];
                var quantized = BlockQuantizer.RoundToNearest(transposed, (int)width, (int)rows, 4, block, symmetric);
                planned.Add(new QuantizedEmbedding(scope, name, [rows, width], scheme, 4, block, null, quantized, null, (float)quantized.MaxAbsError));
            }
        }
        return planned;
    }

    public static void Rewrite(ModelGraph graph, QuantizedEmbedding e)
    {
        var scope = e.Scope;
        long rows = e.ShapeArray[0], width = e.ShapeArray[1];
        var gathers = scope.Consumers(e.Table).ToList();
        if (e.Scheme == EmbeddingScheme.Int8PerRow)
        {
            var q = TensorData.FromInt8(graph.UniqueName(e.Table + "_quantized"), e.ShapeArray, e.Int8!);
            var scale = TensorData.FromFloats(graph.UniqueName(e.Table + "_row_scale"), [rows, 1], e.RowScales!);
            scope.AddInitializer(q);
            scope.AddInitializer(scale);
            foreach (var g in gathers)
            {
                string prefix = g.Name.Length > 0 ? g.Name : e.Table;
                string y = g.Output[0], ids = g.Input[1];
                string gq = graph.UniqueName(y + "_int8"), gs = graph.UniqueName(y + "_row_scale"), gf = graph.UniqueName(y + "_int8_float");
                int at = GraphEdits.IndexOf(scope, g);
                scope.RemoveNode(g);
                scope.AddNode(GraphEdits.Node(graph, "Gather", prefix + "_quantized", [q.Name, ids], [gq], GraphEdits.IntAttr("axis", 0)), at++);
                scope.AddNode(GraphEdits.Node(graph, "Gather", prefix + "_scale", [scale.Name, ids], [gs], GraphEdits.IntAttr("axis", 0)), at++);
                scope.AddNode(GraphEdits.Node(graph, "Cast", prefix + "_cast", [gq], [gf], GraphEdits.IntAttr("to", (long)OnnxDataType.Float)), at++);
                scope.AddNode(GraphEdits.Node(graph, "Mul", prefix + "_rescale", [gf, gs], [y]), at);
            }
        }
        else
        {
            var w = e.Blocked!;
            int blocks = w.BlockCount;
            // Values back to the table's [rows, width] layout; symmetric ones as int4 (zero point 0), others uint4.
            var data = new byte[rows * width];
            for (long r = 0; r < rows; r++)
                for (long c = 0; c < width; c++) data[r * width + c] = w.Values[c * rows + r];
            TensorProto table, zeroPoints;
            if (w.Symmetric)
            {
                var signed = new sbyte[data.Length];
                for (long i = 0; i < data.Length; i++) signed[i] = (sbyte)(data[i] - 8);
                table = TensorData.FromInt4(graph.UniqueName(e.Table + "_int4"), e.ShapeArray, signed);
                zeroPoints = null!;
            }
            else
            {
                table = TensorData.FromUInt4(graph.UniqueName(e.Table + "_uint4"), e.ShapeArray, data);
                zeroPoints = TensorData.FromUInt4(graph.UniqueName(e.Table + "_zero_point"), [rows, blocks], w.ZeroPoints);
            }
            var scales = TensorData.FromFloats(graph.UniqueName(e.Table + "_scale"), [rows, blocks], w.Scales);
            scope.AddInitializer(table);
            scope.AddInitializer(scales);
            if (!w.Symmetric) scope.AddInitializer(zeroPoints);
            graph.RequireOpset(MatMulNBitsPass.MicrosoftDomain, 1);
            foreach (var g in gathers)
            {
                string prefix = g.Name.Length > 0 ? g.Name : e.Table;
                int at = GraphEdits.IndexOf(scope, g);
                scope.RemoveNode(g);
                string[] inputs = w.Symmetric ? [table.Name, g.Input[1], scales.Name] : [table.Name, g.Input[1], scales.Name, zeroPoints.Name];
                var node = GraphEdits.Node(graph, "GatherBlockQuantized", prefix + "_block_quantized", inputs, [g.Output[0]],
                    GraphEdits.IntAttr("block_size", w.BlockSize), GraphEdits.IntAttr("gather_axis", 0), GraphEdits.IntAttr("quantize_axis", 1));
                node.Domain = MatMulNBitsPass.MicrosoftDomain;
                scope.AddNode(node, at);
            }
        }
        GraphEdits.RemoveIfUnused(scope, e.Table);
    }
}

/// <summary>One constant Gather table the pass quantizes, with its quantized values.</summary>
public sealed class QuantizedEmbedding
{
    internal QuantizedEmbedding(GraphScope scope, string table, long[] shape, EmbeddingScheme scheme, int bits, int blockSize,
        sbyte[]? int8, BlockQuantizedWeight? blocked, float[]? rowScales, float maxAbsError)
    {
        Scope = scope; Table = table; ShapeArray = shape; Scheme = scheme; Bits = bits; BlockSize = blockSize;
        Int8 = int8; Blocked = blocked; RowScales = rowScales; MaxAbsError = maxAbsError;
    }

    /// <summary>The table's value name.</summary>
    public string Table { get; }

    /// <summary>The graph it is in.</summary>
    public string Graph => Scope.Path;

    /// <summary>Its shape [rows, width].</summary>
    public IReadOnlyList<long> Shape => ShapeArray;

    /// <summary>How it is stored now.</summary>
    public EmbeddingScheme Scheme { get; }

    /// <summary>Bits per value.</summary>
    public int Bits { get; }

    /// <summary>Values per block along a row (4-bit), 0 for int8 per row.</summary>
    public int BlockSize { get; }

    /// <summary>Largest <c>|w − ŵ|</c>.</summary>
    public float MaxAbsError { get; }

    /// <summary>Payload bytes before (float).</summary>
    public long BytesBefore => 4L * ShapeArray[0] * ShapeArray[1];

    /// <summary>Payload bytes after.</summary>
    public long BytesAfter => Scheme == EmbeddingScheme.Int8PerRow
        ? ShapeArray[0] * ShapeArray[1] + 4L * ShapeArray[0]
        : (ShapeArray[0] * ShapeArray[1] + 1) / 2 + 4L * Blocked!.Scales.Length + (Blocked.Symmetric ? 0 : (Blocked.Scales.Length + 1) / 2);

    internal GraphScope Scope { get; }
    internal long[] ShapeArray { get; }
    internal sbyte[]? Int8 { get; }
    internal BlockQuantizedWeight? Blocked { get; }
    internal float[]? RowScales { get; }

    /// <summary>The storage after, in words.</summary>
    public string StorageAfter => Scheme == EmbeddingScheme.Int8PerRow
        ? "int8 per row + float scales (Gather, then dequantize the gathered rows)"
        : $"{(Blocked!.Symmetric ? "int4" : "uint4 + uint4 zero points")} in blocks of {BlockSize} + float scales (GatherBlockQuantized)";

    /// <summary>The row for the compression report.</summary>
    public LayerChange ToLayerChange() => new(Table, "Gather", Graph, ShapeArray, "float", StorageAfter, BytesBefore, BytesAfter, MaxAbsError);

    /// <summary>One line: table, shape, storage and error.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"Gather table '{Table}' in {Graph}: float[{string.Join(",", ShapeArray)}] -> {StorageAfter}, {BytesBefore} -> {BytesAfter} bytes, max abs error {MaxAbsError:G3}");
}
