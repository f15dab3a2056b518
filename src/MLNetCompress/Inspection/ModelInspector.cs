using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Inspection;

/// <summary>
/// Reads a model and describes it: header, signature, operators, where its weights live, a per-layer
/// weight table and notes. Reads only the ONNX file (and its external data); nothing runs the model.
/// </summary>
public static class ModelInspector
{
    // Weights folded by ONNX Runtime at load sit behind these ops (int8 storage: Cast→Mul or
    // DequantizeLinear; weight sharing: Gather over a codebook; exporters add Identity/Reshape/Transpose).
    private static readonly HashSet<string> SingleInputPassThrough = new(StringComparer.Ordinal)
    {
        "Cast", "DequantizeLinear", "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten",
    };

    private static readonly HashSet<string> AllInputPassThrough = new(StringComparer.Ordinal) { "Mul", "Gather" };

    // Longest chain of ops followed from a layer back to its stored constant.
    private const int MaxChain = 8;

    private static readonly HashSet<string> QuantizationOps = new(StringComparer.Ordinal)
    {
        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger",
        "MatMulNBits", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QGemm", "QAttention", "QOrderedMatMul",
        "GatherBlockQuantized", "MatMulBnb4", "MatMulFpQ4",
    };

    /// <summary>Inspects a model file; external data is read from the file's folder.</summary>
    /// <param name="path">The .onnx file.</param>
    /// <param name="options">Read limits; the defaults accept any model ONNX can store.</param>
    /// <exception cref="OnnxFormatException">The file is missing, empty, not ONNX or not a valid graph.</exception>
    public static InspectionReport Inspect(string path, ModelReadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var model = ModelGraph.Load(path, options);
        return Inspect(model) with
        {
            Path = System.IO.Path.GetFullPath(path),
            FileBytes = new FileInfo(path).Length,
            SizeOnDisk = OnnxModelIO.SizeOnDisk(path),
        };
    }

    /// <summary>Inspects a model already in memory (file sizes are left null).</summary>
    public static InspectionReport Inspect(ModelGraph model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var constants = IndexConstants(model);
        var (parameters, locations) = Storage(model);
        var operators = Operators(model);
        var (layers, unweighted) = Layers(model, constants);
        var signature = model.Signature;
        return new InspectionReport
        {
            IrVersion = model.IrVersion,
            Opsets = model.Opsets
                .Select(kv => new OpsetEntry(kv.Key.Length == 0 ? "ai.onnx" : kv.Key, kv.Value))
                .OrderBy(o => o.Domain == "ai.onnx" ? 0 : 1).ThenBy(o => o.Domain, StringComparer.Ordinal)
                .ToList(),
            Producer = model.Producer,
            Inputs = signature.Inputs.Select(Signature).ToList(),
            Outputs = signature.Outputs.Select(Signature).ToList(),
            MainGraphNodes = model.Main.NodeCount,
            TotalNodes = model.Scopes.Sum(s => s.NodeCount),
            Subgraphs = model.Scopes.Count() - 1,
            Operators = operators,
            Parameters = parameters,
            WeightLocations = locations,
            Layers = layers,
            Notes = Notes(model, operators, parameters, locations, unweighted),
        };
    }

    private static TensorSignature Signature(ValueSignature v)
    {
        var shape = v.Shape?.Select((d, k) => d?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? v.SymbolicDims?[k] ?? "?").ToList();
        return new TensorSignature(v.Name, OnnxDataTypes.Name(v.ElementType), shape);
    }

    private static bool IsDefaultDomain(string domain) => domain.Length == 0 || domain == "ai.onnx";

    private static string QualifiedOp(NodeProto n) => IsDefaultDomain(n.Domain) ? n.OpType : $"{n.Domain}.{n.OpType}";

    // ---- operators ------------------------------------------------------------------------------

    private static List<OpCount> Operators(ModelGraph model) =>
        model.AllNodes
            .GroupBy(x => (Domain: IsDefaultDomain(x.Node.Domain) ? "ai.onnx" : x.Node.Domain, x.Node.OpType))
            .Select(g => new OpCount(g.Key.Domain == "ai.onnx" ? g.Key.OpType : $"{g.Key.Domain}.{g.Key.OpType}", g.Key.Domain, g.Key.OpType, g.Count()))
            .OrderByDescending(o => o.Count).ThenBy(o => o.Op, StringComparer.Ordinal)
            .ToList();

    // ---- storage --------------------------------------------------------------------------------

    private static (ParameterSummary, WeightLocations) Storage(ModelGraph model)
    {
        var byType = new Dictionary<OnnxDataType, TensorGroup>();
        TensorGroup initializers = TensorGroup.Empty, constantNodes = TensorGroup.Empty, inSubgraphs = TensorGroup.Empty,
            external = TensorGroup.Empty, sparse = TensorGroup.Empty;
        var files = new SortedSet<string>(StringComparer.Ordinal);
        long total = 0, bytes = 0;
        foreach (var c in model.Constants)
        {
            long n = c.ElementCount, b = c.ByteCount;
            total += n; bytes += b;
            byType[c.DataType] = byType.GetValueOrDefault(c.DataType, TensorGroup.Empty).Add(n, b);
            if (c.InSubgraph) inSubgraphs = inSubgraphs.Add(n, b);
            else if (c.Kind == ConstantKind.Initializer) initializers = initializers.Add(n, b);
            else constantNodes = constantNodes.Add(n, b);
            if (c.ExternalLocation is { } location) { external = external.Add(n, b); files.Add(location); }
        }
        // Sparse tensors are not among ModelGraph.Constants: count their stored values and indices here.
        foreach (var s in SparseTensors(model))
        {
            long n = s.Values is null ? 0 : TensorData.ElementCount(s.Values);
            long b = PayloadBytes(s.Values) + PayloadBytes(s.Indices);
            total += n; bytes += b;
            sparse = sparse.Add(n, b);
            foreach (var part in new[] { s.Values, s.Indices })
                if (part is not null && ExternalData.OriginOf(part) is { } location) { external = external.Add(0, PayloadBytes(part)); files.Add(location); }
        }
        var stats = byType
            .Select(kv => new DataTypeStats(OnnxDataTypes.Name(kv.Key), kv.Value.Tensors, kv.Value.Parameters, kv.Value.Bytes))
            .OrderByDescending(s => s.Bytes).ThenByDescending(s => s.Parameters).ThenBy(s => s.DataType, StringComparer.Ordinal)
            .ToList();
        return (new ParameterSummary(total, bytes, stats),
            new WeightLocations(initializers, constantNodes, inSubgraphs, external, sparse, files.ToList()));
    }

    private static long PayloadBytes(TensorProto? t) =>
        t is null ? 0 : OnnxDataTypes.ByteCount(OnnxDataTypes.FromWire(t.DataType), TensorData.ElementCount(t));

    private static IEnumerable<SparseTensorProto> SparseTensors(ModelGraph model)
    {
        foreach (var scope in model.Scopes)
        {
            foreach (var s in scope.Proto.SparseInitializer) yield return s;
            foreach (var n in scope.Nodes)
                if (n.OpType == "Constant")
                    foreach (var a in n.Attribute)
                        if (a.Name == "sparse_value" && a.SparseTensor is not null) yield return a.SparseTensor;
        }
    }

    // ---- layers ---------------------------------------------------------------------------------

    /// <summary>Which inputs of a layer may hold its weight (in order of preference), with the input holding
    /// that weight's zero point (-1: none) and the axis a per-channel zero point runs along (-1: last).</summary>
    private readonly record struct WeightSlot(int Input, int ZeroPoint, int Axis);

    private static WeightSlot[]? SlotsOf(NodeProto n)
    {
        if (!IsDefaultDomain(n.Domain)) return null;
        return n.OpType switch
        {
            "Conv" => [new(1, -1, 0)],
            "ConvTranspose" => [new(1, -1, 1)],
            "Gemm" => [new(1, -1, -1), new(0, -1, 0)],
            "MatMul" => [new(1, -1, -1), new(0, -1, 0)],
            "QLinearConv" => [new(3, 5, 0)],
            "QLinearMatMul" => [new(3, 5, -1), new(0, 2, 0)],
            "ConvInteger" => [new(1, 3, 0)],
            "MatMulInteger" => [new(1, 3, -1), new(0, 2, 0)],
            _ => null,
        };
    }

    private sealed record Source(ConstantTensor Tensor, IReadOnlyList<(GraphScope Scope, NodeProto Node)> Chain);

    private sealed class ConstantIndex(Dictionary<GraphScope, Dictionary<string, ConstantTensor>> byScope)
    {
        public ConstantTensor? Get(GraphScope scope, string name) =>
            byScope.TryGetValue(scope, out var m) && m.TryGetValue(name, out var c) ? c : null;
    }

    private static ConstantIndex IndexConstants(ModelGraph model)
    {
        var map = new Dictionary<GraphScope, Dictionary<string, ConstantTensor>>(ReferenceEqualityComparer.Instance);
        foreach (var c in model.Constants)
        {
            if (!map.TryGetValue(c.Scope, out var m)) map[c.Scope] = m = new Dictionary<string, ConstantTensor>(StringComparer.Ordinal);
            m.TryAdd(c.Name, c);
        }
        return new ConstantIndex(map);
    }

    private static (List<LayerInfo> Layers, Dictionary<string, int> Unweighted) Layers(ModelGraph model, ConstantIndex constants)
    {
        var layers = new List<LayerInfo>();
        var unweighted = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var scope in model.Scopes)
        {
            foreach (var node in scope.Nodes)
            {
                if (SlotsOf(node) is not { } slots) continue;
                Source? source = null;
                WeightSlot slot = default;
                foreach (var s in slots)
                {
                    if (s.Input >= node.Input.Count) continue;
                    source = Resolve(scope, node.Input[s.Input], 0, constants);
                    if (source is not null) { slot = s; break; }
                }
                if (source is null)
                {
                    unweighted[node.OpType] = unweighted.GetValueOrDefault(node.OpType) + 1;
                    continue;
                }
                var c = source.Tensor;
                layers.Add(new LayerInfo(
                    GraphScope.NodeLabel(node), QualifiedOp(node), scope.Path, c.Name,
                    source.Chain.Select(x => QualifiedOp(x.Node)).ToList(),
                    c.Dims, c.ElementCount, c.ByteCount, OnnxDataTypes.Name(c.DataType),
                    Sparsity(scope, node, slot, source, constants)));
            }
        }
        return (layers, new Dictionary<string, int>(unweighted, StringComparer.Ordinal));
    }

    /// <summary>The constant a value is computed from when the value is a constant expression through the
    /// pass-through ops (the biggest constant when several feed it), or null when it depends on a graph input.</summary>
    private static Source? Resolve(GraphScope scope, string value, int depth, ConstantIndex constants)
    {
        if (value.Length == 0) return null;
        // A subgraph may read a value of an enclosing graph: look outward until something defines it.
        for (var s = scope; s is not null; s = s.Parent)
        {
            if (constants.Get(s, value) is { } c) return new Source(c, []);
            if (s.Producer(value) is { } producer) return Through(s, producer, depth, constants);
            if (s.IsGraphInput(value)) return null;
        }
        return null;
    }

    private static Source? Through(GraphScope scope, NodeProto node, int depth, ConstantIndex constants)
    {
        if (depth >= MaxChain) return null;
        bool isDequantize = node.OpType == "DequantizeLinear" && (IsDefaultDomain(node.Domain) || node.Domain == "com.microsoft");
        if (!isDequantize && !IsDefaultDomain(node.Domain)) return null;
        if (!SingleInputPassThrough.Contains(node.OpType) && !AllInputPassThrough.Contains(node.OpType)) return null;
        // Every input must itself be constant, or the value is not a weight: Mul(activation, 0.125) is not one.
        Source? best = null;
        foreach (var input in node.Input)
        {
            if (input.Length == 0) continue;
            var src = Resolve(scope, input, depth + 1, constants);
            if (src is null) return null;
            bool candidate = AllInputPassThrough.Contains(node.OpType) || input == node.Input[0];
            if (candidate && (best is null || src.Tensor.ElementCount > best.Tensor.ElementCount)) best = src;
        }
        return best is null ? null : new Source(best.Tensor, [(scope, node), .. best.Chain]);
    }

    // ---- sparsity -------------------------------------------------------------------------------

    private static double? Sparsity(GraphScope layerScope, NodeProto layer, WeightSlot slot, Source source, ConstantIndex constants)
    {
        var stored = source.Tensor;
        long count = stored.ElementCount;
        if (count == 0) return 0;
        if (OnnxDataTypes.BitsPerElement(stored.DataType) == 0) return null;
        long? zeros;
        if (source.Chain.Count == 0)
        {
            // A quantized layer reads its integer weight directly; zero is its zero point.
            zeros = slot.ZeroPoint >= 0 && slot.ZeroPoint < layer.Input.Count && layer.Input[slot.ZeroPoint].Length > 0
                ? ZerosWithZeroPoint(stored, Resolve(layerScope, layer.Input[slot.ZeroPoint], MaxChain, constants)?.Tensor, slot.Axis)
                : ZeroCounting.CountZeros(stored.DataType, TensorData.RawBytes(stored.Tensor), count);
        }
        else
        {
            var (scope, reader) = source.Chain[^1];
            if (reader.OpType == "DequantizeLinear" && reader.Input[0] == stored.Name)
            {
                var zp = reader.Input.Count > 2 && reader.Input[2].Length > 0 ? Resolve(scope, reader.Input[2], MaxChain, constants)?.Tensor : null;
                int axis = (int)(reader.Attribute.FirstOrDefault(a => a.Name == "axis")?.I ?? 1);
                zeros = ZerosWithZeroPoint(stored, zp, axis);
            }
            else if (reader.OpType == "Gather" && reader.Input.Count > 1 && reader.Input[1] == stored.Name)
            {
                var codebook = Resolve(scope, reader.Input[0], MaxChain, constants)?.Tensor;
                zeros = codebook is null ? null : ZerosThroughCodebook(stored, codebook);
            }
            else
            {
                zeros = ZeroCounting.CountZeros(stored.DataType, TensorData.RawBytes(stored.Tensor), count);
            }
        }
        return zeros is long z ? (double)z / count : null;
    }

    /// <summary>Stored values equal to their zero point (scalar, or one per channel along <paramref name="axis"/>).</summary>
    private static long? ZerosWithZeroPoint(ConstantTensor stored, ConstantTensor? zeroPoint, int axis)
    {
        var raw = TensorData.RawBytes(stored.Tensor);
        long count = stored.ElementCount;
        if (zeroPoint is null) return ZeroCounting.CountZeros(stored.DataType, raw, count);
        if (!OnnxDataTypes.IsQuantizedInteger(stored.DataType) && stored.DataType is not (OnnxDataType.Int16 or OnnxDataType.UInt16 or OnnxDataType.Int32))
            return null; // float8 storage: zero points are not plain integers
        var zp = TensorData.ToInt64Array(zeroPoint.Tensor);
        if (zp.Length == 0) return ZeroCounting.CountZeros(stored.DataType, raw, count);
        if (zp.AsSpan().IndexOfAnyExcept(zp[0]) < 0) return ZeroCounting.CountEqual(stored.DataType, raw, 0, count, zp[0]);
        var dims = stored.Dims;
        if (dims.Length == 0) return null;
        if (axis < 0) axis += dims.Length;
        if (axis < 0 || axis >= dims.Length || zeroPoint.Dims.Length != 1 || dims[axis] != zp.Length) return null; // blocked zero points
        long outer = 1, inner = 1;
        for (int k = 0; k < axis; k++) outer *= dims[k];
        for (int k = axis + 1; k < dims.Length; k++) inner *= dims[k];
        long zeros = 0;
        for (long o = 0; o < outer; o++)
            for (int c = 0; c < zp.Length; c++)
                zeros += ZeroCounting.CountEqual(stored.DataType, raw, (o * zp.Length + c) * inner, inner, zp[c]);
        return zeros;
    }

    /// <summary>Indices that pick a zero entry of a 1-D codebook (negative indices count from the end, as Gather does).</summary>
    private static long? ZerosThroughCodebook(ConstantTensor indices, ConstantTensor codebook)
    {
        if (codebook.Dims.Length != 1 || !OnnxDataTypes.IsFloatingPoint(codebook.DataType)) return null;
        var entries = codebook.ToFloats();
        var raw = TensorData.RawBytes(indices.Tensor);
        long zeros = 0;
        for (int k = 0; k < entries.Length; k++)
        {
            if (entries[k] != 0) continue;
            zeros += ZeroCounting.CountEqual(indices.DataType, raw, 0, indices.ElementCount, k);
            if (OnnxDataTypes.BitsPerElement(indices.DataType) > 0 && indices.DataType is not (OnnxDataType.UInt8 or OnnxDataType.UInt16 or OnnxDataType.UInt32 or OnnxDataType.UInt64 or OnnxDataType.UInt4 or OnnxDataType.UInt2))
                zeros += ZeroCounting.CountEqual(indices.DataType, raw, 0, indices.ElementCount, k - entries.Length);
        }
        return zeros;
    }

    // ---- notes ----------------------------------------------------------------------------------

    private static List<string> Notes(ModelGraph model, IReadOnlyList<OpCount> operators, ParameterSummary parameters,
        WeightLocations locations, IReadOnlyDictionary<string, int> unweighted)
    {
        var notes = new List<string>();
        if (model.WasReordered)
            notes.Add("model was not in topological order; its nodes were sorted on load (a rewritten model is written sorted)");

        var quantized = operators.Where(o => QuantizationOps.Contains(o.OpType) || o.OpType.StartsWith("QLinear", StringComparison.Ordinal)).ToList();
        if (quantized.Count > 0)
            notes.Add($"already quantized: {quantized.Sum(o => o.Count)} {string.Join("/", quantized.Select(o => o.Op))} node{(quantized.Sum(o => o.Count) == 1 ? "" : "s")}" +
                      (quantized.Count > 1 ? $" ({string.Join(", ", quantized.Select(o => $"{o.Count} {o.Op}"))})" : ""));

        int initializerInputs = model.Main.Proto.Input.Count(i => model.Main.Initializer(i.Name) is not null);
        if (initializerInputs > 0)
            notes.Add($"IR {model.IrVersion}: {initializerInputs} initializers are also listed as graph inputs (an old export style); they are not counted as inputs");

        foreach (var half in parameters.ByDataType.Where(s => s.DataType is "float16" or "bfloat16"))
            notes.Add($"{half.Tensors} constant tensors ({Sizes.Format(half.Bytes)}) are stored as {half.DataType}");

        if (locations.ExternalData.Tensors > 0)
            notes.Add($"{locations.ExternalData.Tensors} tensors ({Sizes.Format(locations.ExternalData.Bytes)}) are read from external data: {string.Join(", ", locations.ExternalFiles)}");

        if (locations.InSubgraphs.Tensors > 0)
            notes.Add($"{locations.InSubgraphs.Tensors} constants ({Sizes.Format(locations.InSubgraphs.Bytes)}) sit inside If/Loop/Scan bodies");

        if (locations.SparseInitializers.Tensors > 0)
            notes.Add($"{locations.SparseInitializers.Tensors} sparse tensors hold {locations.SparseInitializers.Parameters} stored values ({Sizes.Format(locations.SparseInitializers.Bytes)})");

        foreach (var (op, count) in unweighted)
            notes.Add($"{count} {op} node{(count == 1 ? "" : "s")} multipl{(count == 1 ? "ies" : "y")} two computed values (no constant weight) and {(count == 1 ? "is" : "are")} not in the layer table");

        if (model.Model.Functions.Count > 0)
            notes.Add($"model defines {model.Model.Functions.Count} local functions ({string.Join(", ", model.Model.Functions.Select(f => f.Name))}); their bodies are not inspected");
        return notes;
    }
}
