using System.Collections.Frozen;
using System.Globalization;
using Google.Protobuf;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Pruning;

/// <summary>Options of <see cref="SparseStoragePass"/>.</summary>
public sealed record SparseStorageOptions
{
    /// <summary>Tensors with fewer elements stay dense: a few bytes saved are not worth the format change.</summary>
    public long MinElements { get; init; } = 256;

    /// <summary>A tensor moves only when its sparse form is at most this fraction of its dense bytes (default 0.9).</summary>
    public double MaxSizeRatio { get; init; } = 0.9;

    /// <summary>Initializers left dense, by name.</summary>
    public IReadOnlySet<string> Exclude { get; init; } = FrozenSet<string>.Empty;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (MinElements < 0) throw new ArgumentException($"MinElements is {MinElements}; it must be 0 or more.", nameof(MinElements));
        if (!(MaxSizeRatio > 0 && MaxSizeRatio <= 1))
            throw new ArgumentException($"MaxSizeRatio is {MaxSizeRatio}; it must be in (0, 1].", nameof(MaxSizeRatio));
        ArgumentNullException.ThrowIfNull(Exclude, nameof(Exclude));
    }
}

/// <summary>
/// Moves initializers that are mostly zeros (pruned weights, and the index tensors of clustered weights whose
/// zero centroid is index 0) into <c>graph.sparse_initializer</c>: the non-zero values plus their linear
/// indices into the flattened tensor, as the smallest of int8/int16/int32/int64 that holds the largest index
/// (ONNX Runtime 1.31 accepts all four, and densifies the tensor at session load: same kernels, same speed).
/// A tensor moves only when that makes it smaller, so the .onnx file shrinks without zip.
/// </summary>
/// <remarks>
/// Run it last: a sparse initializer is no longer a constant other passes see. Main-graph initializers only;
/// needs IR version 6 (sparse initializers); an initializer that is also a graph input (overridable) or a
/// graph output stays dense. Sub-byte types (int4/uint4) stay dense.
/// </remarks>
public sealed class SparseStoragePass : IGraphPass, ILayerReportingPass
{
    /// <summary>The lowest IR version with <c>sparse_initializer</c>.</summary>
    public const long MinIrVersion = 6;

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
        if (graph.IrVersion < MinIrVersion)
            return PassResult.Unchanged(Name, [$"all tensors: the model has IR version {graph.IrVersion}; sparse initializers need IR {MinIrVersion}."]);
        var scope = graph.Main;
        var changes = new List<string>();
        var skipped = new List<string>();
        var candidates = scope.Initializers.ToList();
        for (int k = 0; k < candidates.Count; k++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "encode", k, candidates.Count);
            var tensor = candidates[k];
            var type = OnnxDataTypes.FromWire(tensor.DataType);
            int bits = OnnxDataTypes.BitsPerElement(type);
            long count = TensorData.ElementCount(tensor.Dims.ToArray(), tensor.Name);
            if (bits < 8 || count < Options.MinElements || Options.Exclude.Contains(tensor.Name)) continue;
            if (scope.IsGraphOutput(tensor.Name) || scope.Proto.Input.Any(i => i.Name == tensor.Name))
            {
                skipped.Add($"{tensor.Name}: it is also a graph input or output; stays dense.");
                continue;
            }
            var sparse = Encode(tensor, bits / 8, count, Options.MaxSizeRatio);
            if (sparse is null) continue; // not sparse enough to pay
            long denseBytes = count * (bits / 8);
            long sparseBytes = sparse.Values.RawData.Length + sparse.Indices.RawData.Length;
            scope.RemoveInitializer(tensor.Name);
            scope.Proto.SparseInitializer.Add(sparse);
            long nnz = sparse.Values.Dims[0];
            string indexType = OnnxDataTypes.Name(OnnxDataTypes.FromWire(sparse.Indices.DataType));
            string after = string.Create(CultureInfo.InvariantCulture, $"sparse: {nnz} values + {indexType} indices ({1 - (double)nnz / count:0.0%} zeros)");
            changes.Add($"{tensor.Name}: {OnnxDataTypes.Name(type)}[{string.Join(",", tensor.Dims)}] -> {after}, {denseBytes} -> {sparseBytes} bytes");
            layers.Add(new LayerChange(tensor.Name, Consumer(scope, tensor.Name), scope.Path, tensor.Dims.ToArray(),
                OnnxDataTypes.Name(type), after, denseBytes, sparseBytes, 0));
        }
        context.Report(Name, "encode", candidates.Count, candidates.Count);
        return changes.Count == 0 ? PassResult.Unchanged(Name, skipped) : new PassResult(Name, true, changes, skipped);
    }

    private static string Consumer(GraphScope scope, string name) => scope.Consumers(name) is { Count: > 0 } c ? c[0].OpType : "";

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
