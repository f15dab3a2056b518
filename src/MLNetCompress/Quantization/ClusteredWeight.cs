using System.Globalization;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.KernelSafety;
using MLNetCompress.Reporting;

namespace MLNetCompress.Quantization;

/// <summary>
/// A weight stored as a k-means codebook (what <see cref="Clustering.KMeansClusteringPass"/> writes):
/// <c>Gather(codebook, indices)</c>, optionally followed by <c>Reshape(shape)</c>, where the codebook is a small 1-D
/// float initializer and the indices are computed from integer constants only (Cast of uint8/uint4 indices, or nibbles
/// split by BitShift). The quantizers quantize the k codebook entries instead of the weight, so the index tensor stays
/// in the file: <c>Gather(int8 codebook, indices) → DequantizeLinear</c>. ONNX Runtime folds the Gather at session load
/// (all its inputs are constant) and then sees an int8 initializer feeding DequantizeLinear, exactly what it fuses into
/// QLinearConv / QGemm / DynamicQuantizeMatMul for a plain weight.
/// </summary>
/// <remarks>
/// Per-tensor scales keep one int8 codebook of k entries (at most k distinct weight values). Per-channel scales need a
/// codebook per output channel (centroid j of channel c is <c>round(codebook[j] / s_c)</c>), so the int8 codebook is
/// [channels × k] and channel c reads it at <c>c·k + index</c>: an <c>Add</c> of constant offsets before the Gather,
/// folded at load like the rest. The shared index tensor is unchanged; each channel still uses at most k values.
/// </remarks>
internal sealed class ClusteredWeight
{
    /// <summary>Codebooks larger than this are not codebooks (k-means keeps at most 256 centroids).</summary>
    public const int MaxClusters = 256;

    /// <summary>Index expansions longer than this are not the clustering pass's (it writes at most eight nodes).</summary>
    private const int MaxIndexNodes = 16;

    private ClusteredWeight(GraphScope scope, string name, NodeProto gather, NodeProto? reshape, TensorProto codebook,
        long[] dims, OnnxDataType indexType, long indexBytes)
    {
        Scope = scope; Name = name; Gather = gather; Reshape = reshape; CodebookTensor = codebook; Dims = dims;
        IndexType = indexType; IndexBytes = indexBytes;
        Codebook = TensorData.ToFloatArray(codebook);
    }

    /// <summary>The graph the weight is computed in.</summary>
    public GraphScope Scope { get; }

    /// <summary>The weight's value name (the output of the Gather, or of the Reshape after it).</summary>
    public string Name { get; }

    /// <summary>The Gather that reads the codebook.</summary>
    public NodeProto Gather { get; }

    /// <summary>The Reshape after the Gather (flat indices, as 4-bit nibble pairs expand), or null.</summary>
    public NodeProto? Reshape { get; }

    /// <summary>The float codebook initializer.</summary>
    public TensorProto CodebookTensor { get; }

    /// <summary>The codebook's values.</summary>
    public float[] Codebook { get; }

    /// <summary>The weight's shape.</summary>
    public long[] Dims { get; }

    /// <summary>The element type of the Gather's indices (int32 or int64).</summary>
    public OnnxDataType IndexType { get; }

    /// <summary>Bytes of the integer constants the indices are expanded from (the index tensor as stored).</summary>
    public long IndexBytes { get; }

    /// <summary>Number of centroids.</summary>
    public int Clusters => Codebook.Length;

    /// <summary>Number of weight values.</summary>
    public long Count => TensorData.ElementCount(Dims, Name);

    /// <summary>Bytes stored now: indices plus the float codebook.</summary>
    public long StoredBytes => IndexBytes + OnnxDataTypes.ByteCount(OnnxDataTypes.FromWire(CodebookTensor.DataType), Clusters);

    /// <summary>
    /// The clustered weight behind <paramref name="value"/> in <paramref name="scope"/>, or null when the value is not
    /// computed as <c>Gather(float codebook initializer, indices from integer constants)</c> (plus an optional Reshape).
    /// </summary>
    public static ClusteredWeight? Find(GraphScope scope, string value)
    {
        ArgumentNullException.ThrowIfNull(scope);
        if (value.Length == 0 || scope.IsGraphOutput(value) || scope.Producer(value) is not { } producer || !GraphEdits.IsOnnxDomain(producer))
            return null;
        NodeProto gather;
        NodeProto? reshape = null;
        long[]? dims = null;
        if (producer.OpType == "Reshape")
        {
            if (producer.Input.Count != 2 || GraphEdits.Constant(scope, producer.Input[1]) is not { } shape
                || OnnxDataTypes.FromWire(shape.DataType) != OnnxDataType.Int64) return null;
            dims = TensorData.ToInt64Array(shape);
            // 0 copies and -1 infers a dimension: the clustering pass writes the shape itself, never those.
            if (dims.Any(d => d <= 0)) return null;
            if (scope.Producer(producer.Input[0]) is not { OpType: "Gather" } g || !GraphEdits.IsOnnxDomain(g)
                || scope.Consumers(producer.Input[0]).Count != 1 || scope.IsGraphOutput(producer.Input[0])) return null;
            reshape = producer;
            gather = g;
        }
        else if (producer.OpType == "Gather") gather = producer;
        else return null;

        if (gather.Input.Count != 2 || GraphEdits.Int(gather, "axis", 0) != 0) return null;
        var codebook = scope.Initializer(gather.Input[0]);
        if (codebook is null || OnnxDataTypes.FromWire(codebook.DataType) != OnnxDataType.Float || codebook.Dims.Count != 1
            || codebook.Dims[0] is < 1 or > MaxClusters) return null;
        if (scope.Model.IrVersion >= 4 && scope.Proto.Input.Any(i => i.Name == codebook.Name)) return null;

        string indices = gather.Input[1];
        if (!IndexSources(scope, indices, out long indexBytes)) return null;
        if (IndexTypeOf(scope, indices, out long[]? indexDims) is not { } indexType
            || indexType is not (OnnxDataType.Int32 or OnnxDataType.Int64)) return null;
        dims ??= indexDims;
        if (dims is null || dims.Length == 0) return null;
        return new ClusteredWeight(scope, value, gather, reshape, codebook, dims, indexType, indexBytes);
    }

    /// <summary>A one-line description for reasons and reports: "16 centroids, [64,32,3,3]".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Clusters} centroids, [{string.Join(",", Dims)}]");

    /// <summary>
    /// The float values each weight computes to (evaluated by ONNX Runtime through the expansion, one session per
    /// graph). A weight that could not be evaluated is absent; why goes to <paramref name="notes"/>.
    /// </summary>
    public static Dictionary<ClusteredWeight, float[]> ReadValues(ModelGraph graph, IReadOnlyCollection<ClusteredWeight> weights, ICollection<string> notes)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(weights);
        var result = new Dictionary<ClusteredWeight, float[]>(ReferenceEqualityComparer.Instance);
        if (weights.Count == 0) return result;
        var requests = weights.ToDictionary(w => new EffectiveWeights.Request(w.Scope.Path, w.Name, w.Count), w => w);
        var values = EffectiveWeights.Read(graph, null, requests.Keys, notes);
        foreach (var (request, weight) in requests)
            if (values.TryGetValue(request, out var v)) result[weight] = v.Values;
        return result;
    }

    /// <summary>
    /// Quantizes the codebook to symmetric int8 with the scales a plain weight of the same values would get
    /// (<see cref="SymmetricInt8"/>: max|w| / 127 per tensor, or per channel along <paramref name="axis"/>, widened by the
    /// guard), so every weight dequantizes to exactly what <see cref="GuardedInt8.TryQuantize"/> gives for it. Null when a value is
    /// not finite.
    /// </summary>
    /// <param name="values">The weight's float values (<see cref="ReadValues"/>).</param>
    /// <param name="axis">The output-channel axis for per-channel scales, or null for one scale.</param>
    /// <param name="channelAxis">The output-channel axis (the weights of one accumulator share it).</param>
    /// <param name="guard">How the codes are kept from clipping on CPUs without VNNI (<see cref="GuardedInt8"/>): the
    /// guard works on the gathered weights, and the codebook maps with the same scales.</param>
    public QuantizedCodebook? Quantize(float[] values, int? axis, int channelAxis, PairSumGuard guard)
    {
        ArgumentNullException.ThrowIfNull(values);
        var scales = new float[SymmetricInt8.ScaleCount(Dims, axis)];
        var quantized = new sbyte[values.Length];
        if (!GuardedInt8.TryQuantize(values, Dims, axis, channelAxis, guard, quantized, scales, out float error, out var safety)) return null;
        int k = Clusters;
        var book = new sbyte[scales.Length * k];
        for (int c = 0; c < scales.Length; c++)
            for (int j = 0; j < k; j++)
            {
                // The same division and rounding as SymmetricInt8, so a centroid a channel uses maps to the value its
                // weights would get; a centroid the channel never uses may fall outside its range and saturates.
                float q = MathF.Round(Codebook[j] / scales[c], MidpointRounding.ToEven);
                book[c * k + j] = float.IsFinite(q) ? (sbyte)Math.Clamp(q, -SymmetricInt8.QMax, SymmetricInt8.QMax) : (sbyte)0;
            }
        return new QuantizedCodebook(book, scales, axis, error, safety);
    }

    /// <summary>
    /// Inserts the nodes that gather the int8 weight from the quantized codebook (before the float Gather, so before
    /// every reader) and returns the int8 value, shaped like the weight. Readers still read the float weight; rewire
    /// them, then call <see cref="RemoveIfUnused"/>.
    /// </summary>
    public string EmitInt8(ModelGraph graph, QuantizedCodebook codebook)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(codebook);
        var scope = Scope;
        int channels = codebook.Scales.Length;
        string indices = Gather.Input[1];
        void Add(NodeProto node) => scope.InsertBefore(node, Gather);
        if (codebook.Axis is int axis)
        {
            // Channel c reads its own k entries: index + c·k, the offsets broadcast along the channel axis.
            if (Reshape is not null)
            {
                string shaped = graph.UniqueName(Name + "_indices_shaped");
                Add(GraphEdits.Node(graph, "Reshape", Name + "_indices_reshape", [indices, Reshape.Input[1]], [shaped]));
                indices = shaped;
            }
            var offsetDims = new long[Dims.Length];
            Array.Fill(offsetDims, 1L);
            offsetDims[axis] = channels;
            var offsetValues = new long[channels];
            for (int c = 0; c < channels; c++) offsetValues[c] = (long)c * Clusters;
            var offsets = TensorData.FromIntegers(graph.UniqueName(Name + "_channel_offsets"), offsetDims, IndexType, offsetValues);
            scope.AddInitializer(offsets);
            string shifted = graph.UniqueName(Name + "_channel_indices");
            Add(GraphEdits.Node(graph, "Add", Name + "_channel_indices", [indices, offsets.Name], [shifted]));
            indices = shifted;
        }
        var book = TensorData.FromInt8(graph.UniqueName(Name + "_codebook_int8"), [codebook.Values.Length], codebook.Values);
        scope.AddInitializer(book);
        string gathered = graph.UniqueName(Name + "_int8");
        Add(GraphEdits.Node(graph, "Gather", Name + "_gather_int8", [book.Name, indices], [gathered]));
        if (codebook.Axis is null && Reshape is not null)
        {
            string reshaped = graph.UniqueName(Name + "_int8_shaped");
            Add(GraphEdits.Node(graph, "Reshape", Name + "_int8_reshape", [gathered, Reshape.Input[1]], [reshaped]));
            gathered = reshaped;
        }
        return gathered;
    }

    /// <summary>Removes the float Gather (and Reshape) and the float codebook once nothing reads the float weight.</summary>
    public void RemoveIfUnused()
    {
        var scope = Scope;
        if (scope.Consumers(Name).Count > 0 || scope.IsGraphOutput(Name)) return;
        string shape = Reshape?.Input[1] ?? "";
        string indices = Gather.Input[1];
        if (Reshape is not null) scope.RemoveNode(Reshape);
        scope.RemoveNode(Gather);
        GraphEdits.DropValueInfo(scope, Name);
        if (Reshape is not null) GraphEdits.DropValueInfo(scope, Gather.Output[0]);
        GraphEdits.RemoveIfUnused(scope, CodebookTensor.Name);
        if (shape.Length > 0) GraphEdits.RemoveIfUnused(scope, shape);
        RemoveDeadIndexNodes(scope, indices);
    }

    /// <summary>Removes the index expansion when nothing reads it any more (only when the float weight had other readers
    /// and was kept would it still be read; then it stays).</summary>
    private static void RemoveDeadIndexNodes(GraphScope scope, string value)
    {
        var pending = new Stack<string>();
        pending.Push(value);
        while (pending.Count > 0)
        {
            string v = pending.Pop();
            if (scope.Consumers(v).Count > 0 || scope.IsGraphOutput(v)) continue;
            if (scope.Producer(v) is { } p && p.OpType != "Constant")
            {
                if (p.Output.Any(o => scope.Consumers(o).Count > 0 || scope.IsGraphOutput(o))) continue;
                scope.RemoveNode(p);
                foreach (var o in p.Output) GraphEdits.DropValueInfo(scope, o);
                foreach (var i in p.Input) if (i.Length > 0) pending.Push(i);
            }
            else GraphEdits.RemoveIfUnused(scope, v);
        }
    }

    /// <summary>True when <paramref name="value"/> is computed from integer constants only, in a few nodes; sums their bytes.</summary>
    private static bool IndexSources(GraphScope scope, string value, out long bytes)
    {
        bytes = 0;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var stack = new Stack<string>();
        stack.Push(value);
        int nodes = 0;
        while (stack.Count > 0)
        {
            string v = stack.Pop();
            if (v.Length == 0 || !seen.Add(v)) continue;
            if (GraphEdits.Constant(scope, v) is { } t)
            {
                var type = OnnxDataTypes.FromWire(t.DataType);
                if (OnnxDataTypes.IsFloatingPoint(type) || type is OnnxDataType.String or OnnxDataType.Bool) return false;
                bytes += OnnxDataTypes.ByteCount(type, TensorData.ElementCount(t));
                continue;
            }
            var p = scope.Producer(v);
            if (p is null || !GraphEdits.IsOnnxDomain(p) || GraphScope.SubgraphsOf(p).Any() || ++nodes > MaxIndexNodes) return false;
            foreach (var i in p.Input) stack.Push(i);
        }
        return true;
    }

    /// <summary>The element type of the indices (a constant's, or the target of the Cast that makes them), and their
    /// shape when it is known without evaluating anything.</summary>
    private static OnnxDataType? IndexTypeOf(GraphScope scope, string indices, out long[]? dims)
    {
        dims = null;
        if (GraphEdits.Constant(scope, indices) is { } t)
        {
            dims = t.Dims.ToArray();
            return OnnxDataTypes.FromWire(t.DataType);
        }
        if (scope.Producer(indices) is { OpType: "Cast" } cast && cast.Input.Count == 1)
        {
            if (GraphEdits.Constant(scope, cast.Input[0]) is { } source) dims = source.Dims.ToArray();
            return OnnxDataTypes.FromWire((int)GraphEdits.Int(cast, "to", 0));
        }
        return null;
    }
}

/// <summary>An int8 codebook: <see cref="ClusteredWeight.Clusters"/> entries per scale, and the scales.</summary>
/// <param name="Values">The int8 centroids, [channels × k] row-major (k with one scale).</param>
/// <param name="Scales">One scale per channel along <paramref name="Axis"/>, or one.</param>
/// <param name="Axis">The channel axis, or null for one scale.</param>
/// <param name="MaxAbsError">The largest |w − q·s| over the weight's (clustered) values.</param>
/// <param name="Safety">What the pair-sum guard found and did (<see cref="GuardedInt8"/>).</param>
internal sealed record QuantizedCodebook(sbyte[] Values, float[] Scales, int? Axis, float MaxAbsError, PairSumOutcome Safety);
