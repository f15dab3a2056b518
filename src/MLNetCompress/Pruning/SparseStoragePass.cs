using System.Collections.Frozen;
using System.Globalization;
using Google.Protobuf;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Runtime;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Pruning;

/// <summary>How <see cref="SparseStoragePass"/> stores a mostly-zero tensor.</summary>
public enum SparseFormat
{
    /// <summary>Per tensor, the smallest of its current form, <see cref="Coo"/> and <see cref="Bitmask"/> (each where the model allows it).</summary>
    Auto,
    /// <summary><c>sparse_initializer</c>: the non-zero values and their linear indices (IR 6).</summary>
    Coo,
    /// <summary>A 1-bit mask and the non-zero values, expanded by constant nodes ONNX Runtime folds at load (opset 11; <see cref="BitmaskEncoding"/>).</summary>
    Bitmask,
}

/// <summary>Options of <see cref="SparseStoragePass"/>.</summary>
public sealed record SparseStorageOptions
{
    /// <summary>The sparse form to write (default <see cref="SparseFormat.Coo"/>, the one every IR 6 model can hold).</summary>
    public SparseFormat Format { get; init; } = SparseFormat.Coo;

    /// <summary>Tensors with fewer elements stay dense: a few bytes saved are not worth the format change.</summary>
    public long MinElements { get; init; } = 256;

    /// <summary>A tensor moves only when its sparse form is at most this fraction of its dense bytes (default 0.9).</summary>
    public double MaxSizeRatio { get; init; } = 0.9;

    /// <summary>Initializers left dense, by name.</summary>
    public IReadOnlySet<string> Exclude { get; init; } = FrozenSet<string>.Empty;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Format)) throw new ArgumentException($"Format {Format} is not a known sparse format.", nameof(Format));
        if (MinElements < 0) throw new ArgumentException($"MinElements is {MinElements}; it must be 0 or more.", nameof(MinElements));
        if (!(MaxSizeRatio > 0 && MaxSizeRatio <= 1))
            throw new ArgumentException($"MaxSizeRatio is {MaxSizeRatio}; it must be in (0, 1].", nameof(MaxSizeRatio));
        ArgumentNullException.ThrowIfNull(Exclude, nameof(Exclude));
    }
}

/// <summary>
/// Stores mostly-zero initializers (pruned weights, and the index tensors of clustered weights whose zero centroid is
/// index 0) in a smaller form, so the .onnx file shrinks without zip. Two forms (<see cref="SparseStorageOptions.Format"/>):
/// <list type="bullet">
/// <item><see cref="SparseFormat.Coo"/>: <c>graph.sparse_initializer</c> — the non-zero values plus their linear
/// indices into the flattened tensor, as the smallest of int8/int16/int32/int64 that holds the largest index (ONNX
/// Runtime 1.31 accepts all four, and densifies the tensor at session load: same kernels, same speed).</item>
/// <item><see cref="SparseFormat.Bitmask"/>: one bit per element and the non-zero values (a clustered weight's indices
/// 4-bit), computed back by constant nodes that ONNX Runtime folds at load (<see cref="BitmaskEncoding"/>): about
/// 1 + 4 × density bits per clustered weight, where COO pays 8 × density bits or more for the indices alone.
/// Needs opset 11. Besides initializers it takes the index tensors a clustered weight computes from constants (the
/// 4-bit nibble pairs split by BitShift below opset 21, uint4 tensors from it) and re-stores them.</item>
/// </list>
/// <see cref="SparseFormat.Auto"/> takes, per tensor, the smallest serialized form of the current one and those the
/// model allows. A tensor moves only when that makes it smaller.
/// </summary>
/// <remarks>
/// Run it last: a sparse initializer is no longer a constant other passes see. Main-graph tensors only; COO needs IR
/// version 6 (sparse initializers); an initializer that is also a graph input (overridable) or a graph output stays
/// dense.
/// </remarks>
public sealed class SparseStoragePass : IGraphPass, ILayerReportingPass
{
    /// <summary>The lowest IR version with <c>sparse_initializer</c>.</summary>
    public const long MinIrVersion = 6;

    /// <summary>The lowest ai.onnx opset that holds the bitmask expansion (BitShift and CumSum).</summary>
    public const long MinBitmaskOpset = BitmaskEncoding.MinOpset;

    // Computed index tensors are cut out of at most this many constant nodes (the 4-bit split takes five).
    private const int MaxConeNodes = 16;

    /// <summary>Creates the pass.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public SparseStoragePass(SparseStorageOptions? options = null)
    {
        Options = options ?? new SparseStorageOptions();
        Options.Validate();
    }

    /// <summary>The options.</summary>
    public SparseStorageOptions Options { get; }

    /// <inheritdoc />
    public string Name => "sparse-storage";

    /// <inheritdoc />
    public PassResult Run(ModelGraph graph, PassContext context) => Run(graph, context, new List<LayerChange>());

    /// <inheritdoc />
    public PassResult Run(ModelGraph graph, PassContext context, ICollection<LayerChange> layers)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(layers);
        bool coo = Options.Format != SparseFormat.Bitmask && graph.IrVersion >= MinIrVersion;
        bool bitmask = Options.Format != SparseFormat.Coo && graph.OnnxOpset >= MinBitmaskOpset;
        string cooReason = $"the model has IR version {graph.IrVersion}; sparse initializers need IR {MinIrVersion}";
        string bitmaskReason = $"the model has opset {graph.OnnxOpset}; the bitmask expansion needs opset {MinBitmaskOpset} (BitShift, CumSum)";
        if (!coo && !bitmask)
        {
            string reason = Options.Format switch
            {
                SparseFormat.Coo => cooReason,
                SparseFormat.Bitmask => bitmaskReason,
                _ => $"{cooReason}, and {bitmaskReason}",
            };
            return PassResult.Unchanged(Name, [$"all tensors: {reason}."]);
        }
        var run = new Encoder(this, graph, context, coo, bitmask, layers);
        if (bitmask) run.ComputedIndexTensors();
        run.Initializers();
        return run.Changes.Count == 0 ? PassResult.Unchanged(Name, run.Skipped) : new PassResult(Name, true, run.Changes, run.Skipped);
    }

    /// <summary>One run of the pass over one model.</summary>
    private sealed class Encoder(SparseStoragePass pass, ModelGraph graph, PassContext context, bool coo, bool bitmask, ICollection<LayerChange> layers)
    {
        private readonly GraphScope scope = graph.Main;
        private readonly BitmaskExpansion expansion = new(graph);
        private readonly SparseStorageOptions options = pass.Options;
        private readonly HashSet<string> written = new(StringComparer.Ordinal);

        public List<string> Changes { get; } = [];

        public List<string> Skipped { get; } = [];

        /// <summary>Main-graph initializers of whole-byte types (not those a bitmask expansion wrote).</summary>
        public void Initializers()
        {
            var candidates = scope.Initializers.Where(t => !written.Contains(t.Name)).ToList();
            for (int k = 0; k < candidates.Count; k++)
            {
                context.Cancellation.ThrowIfCancellationRequested();
                context.Report(pass.Name, "encode", k, candidates.Count);
                var tensor = candidates[k];
                var type = OnnxDataTypes.FromWire(tensor.DataType);
                int bits = OnnxDataTypes.BitsPerElement(type);
                long count = TensorData.ElementCount(tensor.Dims.ToArray(), tensor.Name);
                if (bits < 8 || count < options.MinElements || options.Exclude.Contains(tensor.Name)) continue;
                if (scope.IsGraphOutput(tensor.Name) || scope.Proto.Input.Any(i => i.Name == tensor.Name))
                {
                    Skipped.Add($"{tensor.Name}: it is also a graph input or output; stays dense.");
                    continue;
                }
                long denseSerialized = tensor.CalculateSize();
                var sparse = coo ? Encode(tensor, bits / 8, count, options.MaxSizeRatio) : null;
                BitmaskTensor? encoded = null;
                BitmaskExpansion.Planned? planned = null;
                if (bitmask && scope.Consumers(tensor.Name).Count > 0)
                {
                    encoded = BitmaskEncoding.Encode(TensorData.RawBytes(tensor), type, tensor.Dims.ToArray());
                    planned = expansion.Plan(encoded, tensor.Name);
                    if (planned.SerializedBytes > options.MaxSizeRatio * denseSerialized) planned = null;
                }
                if (sparse is not null && (planned is null || sparse.CalculateSize() <= planned.SerializedBytes))
                {
                    StoreCoo(tensor, sparse, type, count);
                }
                else if (planned is not null)
                {
                    var anchor = GraphEdits.FirstConsumer(scope, tensor.Name);
                    string consumer = anchor.OpType;
                    scope.RemoveInitializer(tensor.Name);
                    Apply(planned, anchor);
                    Report(tensor.Name, consumer, tensor.Dims.ToArray(), OnnxDataTypes.Name(type), OnnxDataTypes.ByteCount(type, count), encoded!, planned);
                }
            }
            context.Report(pass.Name, "encode", candidates.Count, candidates.Count);
        }

        private void Apply(BitmaskExpansion.Planned planned, NodeProto anchor)
        {
            expansion.Apply(planned, anchor);
            foreach (var t in planned.Initializers) written.Add(t.Name);
        }

        private void StoreCoo(TensorProto tensor, SparseTensorProto sparse, OnnxDataType type, long count)
        {
            long denseBytes = OnnxDataTypes.ByteCount(type, count);
            long sparseBytes = sparse.Values.RawData.Length + sparse.Indices.RawData.Length;
            string consumer = Consumer(tensor.Name);
            scope.RemoveInitializer(tensor.Name);
            scope.Proto.SparseInitializer.Add(sparse);
            long nnz = sparse.Values.Dims[0];
            string indexType = OnnxDataTypes.Name(OnnxDataTypes.FromWire(sparse.Indices.DataType));
            string after = string.Create(CultureInfo.InvariantCulture, $"sparse: {nnz} values + {indexType} indices ({1 - (double)nnz / count:0.0%} zeros)");
            Changes.Add($"{tensor.Name}: {OnnxDataTypes.Name(type)}[{string.Join(",", tensor.Dims)}] -> {after}, {denseBytes} -> {sparseBytes} bytes");
            layers.Add(new LayerChange(tensor.Name, consumer, scope.Path, tensor.Dims.ToArray(), OnnxDataTypes.Name(type), after, denseBytes, sparseBytes, 0));
        }

        private void Report(string name, string consumer, long[] dims, string before, long bytesBefore, BitmaskTensor t, BitmaskExpansion.Planned planned)
        {
            long count = t.Count;
            string values = t.Nibbles ? "4-bit values" : $"{OnnxDataTypes.Name(t.DataType)} values";
            string mask = planned.NestedMask ? "1-bit mask (itself a bitmask)" : "1-bit mask";
            string after = string.Create(CultureInfo.InvariantCulture, $"bitmask: {t.NonZeros} {values} + {mask} ({1 - (double)t.NonZeros / Math.Max(1, count):0.0%} zeros)");
            Changes.Add($"{name}: {before}[{string.Join(",", dims)}] -> {after}, {bytesBefore} -> {planned.PayloadBytes} bytes");
            layers.Add(new LayerChange(name, consumer, scope.Path, dims, before, after, bytesBefore, planned.PayloadBytes, 0));
        }

        private string Consumer(string name) => scope.Consumers(name) is { Count: > 0 } c ? c[0].OpType : "";

        /// <summary>
        /// Index tensors that Casts read from constants other than a plain whole-byte initializer: a 4-bit (u)int4
        /// initializer, or the output of constant nodes (the 4-bit nibble split). Each is evaluated, bitmask-encoded,
        /// and replaces what computed it when that is smaller.
        /// </summary>
        public void ComputedIndexTensors()
        {
            var casts = scope.Nodes.Where(n => n.OpType == "Cast" && GraphEdits.IsOnnxDomain(n) && n.Input.Count == 1).ToList();
            for (int k = 0; k < casts.Count; k++)
            {
                context.Cancellation.ThrowIfCancellationRequested();
                context.Report(pass.Name, "computed indices", k, casts.Count);
                var cast = casts[k];
                string x = cast.Input[0];
                if (options.Exclude.Contains(x) || scope.IsGraphOutput(x)) continue;
                if (scope.Initializer(x) is { } init)
                {
                    var type = OnnxDataTypes.FromWire(init.DataType);
                    if (type is not (OnnxDataType.UInt4 or OnnxDataType.Int4) || GraphEdits.Constant(scope, x) is null) continue;
                    // Every reader must be a Cast: the value turns from (u)int4 into (u)int8, which only a Cast reads the same.
                    if (scope.Consumers(x).Any(c => c.OpType != "Cast") || !ReferenceEquals(GraphEdits.FirstConsumer(scope, x), cast)) continue;
                    long count = TensorData.ElementCount(init);
                    if (count < options.MinElements) continue;
                    var wide = Widen(init, type, count);
                    Replace(x, wide, [], [], init.CalculateSize(), $"{OnnxDataTypes.Name(type)}", OnnxDataTypes.ByteCount(type, count));
                    continue;
                }
                var cone = Cone(x, cast);
                if (cone is null) continue;
                var (nodes, constants) = cone.Value;
                long big = constants.Sum(c => TensorData.ElementCount(GraphEdits.Constant(scope, c)!));
                if (big < options.MinElements) continue;
                TensorProto value;
                try
                {
                    value = Evaluate(nodes, constants, x);
                }
                catch (Exception e) when (e is OnnxRuntimeException or OrtRuntimeException or NotSupportedException)
                {
                    Skipped.Add($"{x}: ONNX Runtime could not evaluate the constant nodes that compute it ({OrtRuntimeException.OneLine(e)}); left as it is.");
                    continue;
                }
                value = NarrowToBytes(value);
                var valueType = OnnxDataTypes.FromWire(value.DataType);
                if (valueType is not (OnnxDataType.UInt8 or OnnxDataType.Int8) || TensorData.ElementCount(value) < options.MinElements) continue;
                // What goes away: the nodes, and the constants only they read (each kept in its cheapest current form).
                long existing = nodes.Sum(n => (long)n.CalculateSize() + 3);
                long existingPayload = 0;
                foreach (var c in constants)
                {
                    if (scope.Consumers(c).Any(r => !nodes.Contains(r, ReferenceEqualityComparer.Instance))) continue;
                    var t = GraphEdits.Constant(scope, c)!;
                    existing += CheapestCurrent(t);
                    existingPayload += t.RawData.Length;
                }
                Replace(x, value, nodes, constants, existing, "computed " + OnnxDataTypes.Name(valueType), existingPayload);
            }
            context.Report(pass.Name, "computed indices", casts.Count, casts.Count);
        }

        /// <summary>
        /// Wider unsigned index tensors whose values all fit a byte (the cluster pass splits its 4-bit pairs on uint32 so
        /// preparation's constant folding keeps them packed) as uint8: the Cast that reads them gives the same indices.
        /// </summary>
        private static TensorProto NarrowToBytes(TensorProto value)
        {
            var type = OnnxDataTypes.FromWire(value.DataType);
            if (type is not (OnnxDataType.UInt16 or OnnxDataType.UInt32 or OnnxDataType.UInt64)) return value;
            var values = TensorData.ToInt64Array(value);
            if (values.Any(v => v is < 0 or > byte.MaxValue)) return value;
            return TensorData.FromIntegers(value.Name, value.Dims.ToArray(), OnnxDataType.UInt8, values);
        }

        /// <summary>A constant's serialized size, or that of its COO form when COO is allowed and smaller.</summary>
        private long CheapestCurrent(TensorProto t)
        {
            long dense = t.CalculateSize();
            var type = OnnxDataTypes.FromWire(t.DataType);
            int bits = OnnxDataTypes.BitsPerElement(type);
            long count = TensorData.ElementCount(t);
            if (!coo || bits < 8 || count < options.MinElements || scope.Initializer(t.Name) is null) return dense;
            var sparse = Encode(t, bits / 8, count, options.MaxSizeRatio);
            return sparse is null ? dense : Math.Min(dense, sparse.CalculateSize());
        }

        private void Replace(string x, TensorProto value, List<NodeProto> nodes, List<string> constants, long existing, string before, long bytesBefore)
        {
            var encoded = BitmaskEncoding.Encode(TensorData.RawBytes(value), OnnxDataTypes.FromWire(value.DataType), value.Dims.ToArray());
            var planned = expansion.Plan(encoded, x);
            if (planned.SerializedBytes > options.MaxSizeRatio * existing) return;
            if (nodes.Count > 0)
            {
                scope.RemoveNodes(nodes);
                foreach (var n in nodes) foreach (var o in n.Output) GraphEdits.DropValueInfo(scope, o);
            }
            else scope.RemoveInitializer(x);
            Apply(planned, GraphEdits.FirstConsumer(scope, x));
            foreach (var c in constants) GraphEdits.RemoveIfUnused(scope, c);
            GraphEdits.DropValueInfo(scope, x);
            Report(x, "Cast", value.Dims.ToArray(), before, bytesBefore, encoded, planned);
        }

        /// <summary>A (u)int4 initializer's values as (u)int8, in the same order.</summary>
        private static TensorProto Widen(TensorProto t, OnnxDataType type, long count)
        {
            var raw = TensorData.RawBytes(t);
            var wide = new byte[count];
            for (int i = 0; i < count; i++)
                wide[i] = type == OnnxDataType.UInt4 ? (byte)TensorData.UnpackUInt4(raw, i) : unchecked((byte)(sbyte)TensorData.UnpackInt4(raw, i));
            return TensorData.FromRaw(t.Name, t.Dims.ToArray(), type == OnnxDataType.UInt4 ? OnnxDataType.UInt8 : OnnxDataType.Int8, wide);
        }

        /// <summary>
        /// The constant nodes that compute <paramref name="x"/> for <paramref name="cast"/> alone (ai.onnx, no subgraphs,
        /// every output read only inside the cone or by the Cast), in graph order, and the constants they read; null when
        /// <paramref name="x"/> is not computed that way.
        /// </summary>
        private (List<NodeProto> Nodes, List<string> Constants)? Cone(string x, NodeProto cast)
        {
            if (scope.Producer(x) is not { } top || top.OpType == "Constant") return null;
            var cone = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
            var constants = new List<string>();
            var pending = new Stack<NodeProto>([top]);
            while (pending.Count > 0)
            {
                var n = pending.Pop();
                if (!cone.Add(n)) continue;
                if (cone.Count > MaxConeNodes || !GraphEdits.IsOnnxDomain(n) || GraphScope.SubgraphsOf(n).Any()) return null;
                if (n.OpType.StartsWith("Random", StringComparison.Ordinal) || n.OpType is "Multinomial" or "Bernoulli" or "Dropout") return null;
                foreach (var i in n.Input)
                {
                    if (i.Length == 0) continue;
                    if (GraphEdits.Constant(scope, i) is not null) { if (!constants.Contains(i)) constants.Add(i); continue; }
                    if (scope.Producer(i) is { } p) pending.Push(p);
                    else return null; // a graph input or a value of an enclosing graph: not constant
                }
            }
            foreach (var n in cone)
                foreach (var o in n.Output)
                {
                    if (o.Length == 0) continue;
                    if (scope.IsGraphOutput(o)) return null;
                    foreach (var reader in scope.Consumers(o))
                        if (!cone.Contains(reader) && !(o == x && reader.OpType == "Cast")) return null;
                }
            if (!ReferenceEquals(GraphEdits.FirstConsumer(scope, x), cast)) return null;
            return (scope.Nodes.Where(cone.Contains).ToList(), constants);
        }

        /// <summary>Runs the cone in ONNX Runtime as a model with no inputs and returns <paramref name="x"/>.</summary>
        private TensorProto Evaluate(List<NodeProto> nodes, List<string> constants, string x)
        {
            var model = new ModelProto { IrVersion = Math.Max(graph.IrVersion, 4), Graph = new GraphProto { Name = "computed_index_tensor" } };
            model.OpsetImport.AddRange(graph.Model.OpsetImport.Select(o => o.Clone()));
            foreach (var c in constants)
            {
                var t = GraphEdits.Constant(scope, c)!.Clone();
                t.Name = c;
                model.Graph.Initializer.Add(t);
            }
            model.Graph.Node.AddRange(nodes.Select(n => n.Clone()));
            model.Graph.Output.Add(new ValueInfoProto { Name = x });
            var runtime = RuntimeOptions.Default with { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
            using var session = OrtSessionFactory.Create(model.ToByteArray(), runtime);
            using var runOptions = new RunOptions();
            using var results = session.Run(runOptions, Array.Empty<string>(), Array.Empty<OrtValue>(), [x]);
            var v = results[0];
            if (!v.IsTensor) throw new NotSupportedException($"'{x}' is not a tensor");
            var info = v.GetTensorTypeAndShape();
            if (info.ElementDataType == TensorElementType.String) throw new NotSupportedException($"'{x}' is a string tensor");
            return TensorData.FromRaw(x, info.Shape, (OnnxDataType)(int)info.ElementDataType, v.GetTensorMutableRawData());
        }
    }

    /// <summary>
    /// The sparse form of a tensor: values whose bytes are not all zero (so −0.0 is kept, and the dense tensor is
    /// restored bit for bit) and their linear indices. Null when it would not be at most <paramref name="maxRatio"/>
    /// of the dense bytes.
    /// </summary>
    internal static SparseTensorProto? Encode(TensorProto tensor, int elementBytes, long count, double maxRatio)
    {
        var raw = TensorData.RawBytes(tensor);
        var (indexType, indexBytes) = (count - 1) switch
        {
            <= sbyte.MaxValue => (OnnxDataType.Int8, 1),
            <= short.MaxValue => (OnnxDataType.Int16, 2),
            <= int.MaxValue => (OnnxDataType.Int32, 4),
            _ => (OnnxDataType.Int64, 8),
        };
        long nnz = 0;
        for (long i = 0; i < count; i++)
            if (raw.Slice((int)(i * elementBytes), elementBytes).ContainsAnyExcept((byte)0)) nnz++;
        if (nnz * (elementBytes + indexBytes) > maxRatio * count * elementBytes) return null;

        var values = new byte[nnz * elementBytes];
        var indices = new byte[nnz * indexBytes];
        long at = 0;
        for (long i = 0; i < count; i++)
        {
            var element = raw.Slice((int)(i * elementBytes), elementBytes);
            if (!element.ContainsAnyExcept((byte)0)) continue;
            element.CopyTo(values.AsSpan((int)(at * elementBytes)));
            // Little-endian two's complement, the ONNX raw layout of every index type.
            for (int b = 0; b < indexBytes; b++) indices[at * indexBytes + b] = (byte)(i >> (8 * b));
            at++;
        }
        var sparse = new SparseTensorProto
        {
            Values = new TensorProto { Name = tensor.Name, DataType = tensor.DataType, RawData = ByteString.CopyFrom(values) },
            Indices = new TensorProto { DataType = (int)indexType, RawData = ByteString.CopyFrom(indices) },
        };
        sparse.Values.Dims.Add(nnz);
        sparse.Indices.Dims.Add(nnz);
        sparse.Dims.AddRange(tensor.Dims);
        return sparse;
    }
}
