using Google.Protobuf;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Runtime;
using Microsoft.ML.OnnxRuntime;

namespace MLNetCompress.Reporting;

/// <summary>A weight as the model computes it, and what its storage says about it.</summary>
/// <param name="Values">The float values the consuming op reads, row-major.</param>
/// <param name="Clusters">Centroids of the codebook it is gathered from, when it is gathered from one.</param>
/// <param name="Bits">Bits per element of the integer codes it is expanded from (indices or quantized values), when it is.</param>
internal sealed record EffectiveWeight(float[] Values, int? Clusters, int? Bits);

/// <summary>
/// Reads the float value a weight-consuming op actually sees, whatever the storage: a plain initializer, a
/// <c>sparse_initializer</c>, or a small constant subgraph that expands it (Cast→Mul int8 storage, DequantizeLinear,
/// Cast→Gather→Reshape codebooks). Subgraphs are evaluated by ONNX Runtime itself, cut out into one model with no
/// inputs per graph, so no op is reimplemented here and each graph costs one session.
/// </summary>
internal static class EffectiveWeights
{
    /// <summary>Constant subgraphs larger than this are not evaluated (a weight expands in a handful of nodes).</summary>
    private const int MaxNodesPerWeight = 64;

    /// <summary>A weight to read: its graph path and value name, the shape it must have, and where the original graph read it.</summary>
    internal sealed record Request(string Graph, string Weight, long Elements);

    /// <summary>
    /// Resolves each request in <paramref name="graph"/>. A weight whose name is gone (e.g. QDQ rewired its reader)
    /// is found through the op that read it in <paramref name="original"/>: the node of the same name, same input.
    /// Requests that cannot be resolved (a split layer, integer-only kernels) are absent from the result; why goes to <paramref name="notes"/>.
    /// </summary>
    public static Dictionary<Request, EffectiveWeight> Read(ModelGraph graph, ModelGraph? original, IReadOnlyCollection<Request> requests, ICollection<string> notes)
    {
        var result = new Dictionary<Request, EffectiveWeight>();
        foreach (var group in requests.GroupBy(r => r.Graph, StringComparer.Ordinal))
        {
            var scope = graph.Scopes.FirstOrDefault(s => s.Path == group.Key);
            if (scope is null) continue;
            var originalScope = original?.Scopes.FirstOrDefault(s => s.Path == group.Key);
            var pending = new List<(Request Request, string Value, Closure Closure)>();
            foreach (var request in group)
            {
                string? value = ValueRead(scope, originalScope, request.Weight);
                if (value is null) continue;
                if (GraphEdits.Constant(scope, value) is { } constant)
                {
                    var type = OnnxDataTypes.FromWire(constant.DataType);
                    if (OnnxDataTypes.IsFloatingPoint(type) && TensorData.ElementCount(constant.Dims.ToArray()) == request.Elements)
                        result[request] = new EffectiveWeight(TensorData.ToFloatArray(constant), null, null);
                    continue;
                }
                var closure = Closure.Of(scope, value);
                if (closure is null) continue;
                pending.Add((request, value, closure));
            }
            if (pending.Count == 0) continue;
            try
            {
                var values = Evaluate(graph, scope, pending.Select(p => (p.Value, p.Closure)).ToList());
                foreach (var (request, value, closure) in pending)
                {
                    var t = values[value];
                    var type = OnnxDataTypes.FromWire(t.DataType);
                    if (!OnnxDataTypes.IsFloatingPoint(type) || TensorData.ElementCount(t.Dims.ToArray()) != request.Elements) continue;
                    result[request] = new EffectiveWeight(TensorData.ToFloatArray(t), closure.Clusters(), closure.Bits(request.Elements));
                }
            }
            catch (Exception e) when (e is OnnxRuntimeException or OrtRuntimeException or NotSupportedException or OnnxFormatException or ArgumentException)
            {
                notes.Add($"weights in graph {group.Key} expanded by subgraphs could not be evaluated ({OrtRuntimeException.OneLine(e)}); their histograms are missing");
            }
        }
        return result;
    }

    /// <summary>
    /// The value the weight's reader now reads: the same input of the node of the same name and op (a rewrite may have
    /// rewired it and left the old tensor behind), else the weight itself when it still exists.
    /// </summary>
    private static string? ValueRead(GraphScope scope, GraphScope? originalScope, string weight)
    {
        if (originalScope is not null)
        {
            foreach (var reader in originalScope.Consumers(weight))
            {
                if (reader.Name.Length == 0) continue;
                int index = reader.Input.IndexOf(weight);
                var same = scope.Nodes.Where(n => n.Name == reader.Name && n.OpType == reader.OpType).Take(2).ToList();
                if (same.Count == 1 && index < same[0].Input.Count && same[0].Input[index].Length > 0) return same[0].Input[index];
            }
        }
        return IsDefined(scope, weight) ? weight : null;
    }

    private static bool IsDefined(GraphScope scope, string value)
    {
        for (var s = scope; s is not null; s = s.Parent)
            if (s.Initializer(value) is not null || s.Producer(value) is not null || Sparse(s, value) is not null) return true;
        return false;
    }

    private static SparseTensorProto? Sparse(GraphScope scope, string value) =>
        scope.Proto.SparseInitializer.FirstOrDefault(t => t.Values?.Name == value);

    /// <summary>The nodes and constants that compute one value from constants alone, in one graph.</summary>
    private sealed class Closure
    {
        public List<NodeProto> Nodes { get; } = [];
        public Dictionary<string, TensorProto> Constants { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, SparseTensorProto> SparseConstants { get; } = new(StringComparer.Ordinal);

        /// <summary>The closure of <paramref name="value"/>, or null when it reads a graph input, an outer value or a node with a subgraph.</summary>
        public static Closure? Of(GraphScope scope, string value)
        {
            var c = new Closure();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var stack = new Stack<string>();
            stack.Push(value);
            while (stack.Count > 0)
            {
                string v = stack.Pop();
                if (v.Length == 0 || !seen.Add(v)) continue;
                if (GraphEdits.Constant(scope, v) is { } t) { c.Constants[v] = t; continue; }
                if (Sparse(scope, v) is { } sparse) { c.SparseConstants[v] = sparse; continue; }
                var producer = scope.Producer(v);
                if (producer is null || GraphScope.SubgraphsOf(producer).Any() || c.Nodes.Count >= MaxNodesPerWeight) return null;
                if (c.Nodes.Any(n => ReferenceEquals(n, producer))) continue;
                c.Nodes.Add(producer);
                foreach (var i in producer.Input) stack.Push(i);
            }
            return c;
        }

        /// <summary>The size of the float codebook a Gather reads, when the value is gathered from one.</summary>
        public int? Clusters()
        {
            foreach (var n in Nodes)
                if (n.OpType == "Gather" && n.Input.Count > 0 && Constants.TryGetValue(n.Input[0], out var book)
                    && OnnxDataTypes.IsFloatingPoint(OnnxDataTypes.FromWire(book.DataType)) && book.Dims.Count == 1)
                    return (int)book.Dims[0];
            return null;
        }

        /// <summary>Bits per weight of the largest 8-bit-or-narrower integer constant it is expanded from (packed nibbles count as 4).</summary>
        public int? Bits(long elements)
        {
            long best = 0;
            foreach (var t in Constants.Values)
            {
                var type = OnnxDataTypes.FromWire(t.DataType);
                if (!OnnxDataTypes.IsQuantizedInteger(type)) continue;
                long bytes = OnnxDataTypes.ByteCount(type, TensorData.ElementCount(t.Dims.ToArray()));
                if (bytes * 8 >= elements && bytes > best) best = bytes;
            }
            return best == 0 || elements == 0 ? null : (int)Math.Round(8.0 * best / elements);
        }
    }

    /// <summary>Runs the closures of one graph as one ONNX Runtime model with no inputs and returns each requested value.</summary>
    private static Dictionary<string, TensorProto> Evaluate(ModelGraph graph, GraphScope scope, List<(string Value, Closure Closure)> wanted)
    {
        var model = new ModelProto
        {
            // IR 3 wants initializers listed as inputs; 4 is the oldest that does not.
            IrVersion = Math.Max(graph.IrVersion, 4),
            Graph = new GraphProto { Name = "weights" },
        };
        model.OpsetImport.AddRange(graph.Model.OpsetImport.Select(o => o.Clone()));
        var nodes = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var constants = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (_, closure) in wanted)
        {
            foreach (var n in closure.Nodes) nodes.Add(n);
            foreach (var (name, t) in closure.Constants)
            {
                if (!constants.Add(name)) continue;
                var copy = t.Clone();
                copy.Name = name;
                model.Graph.Initializer.Add(copy);
            }
            foreach (var (name, t) in closure.SparseConstants)
                if (constants.Add(name)) model.Graph.SparseInitializer.Add(t.Clone());
        }
        // The graph's own order is topological; keep it.
        foreach (var n in scope.Nodes)
            if (nodes.Contains(n)) model.Graph.Node.Add(n.Clone());

        // Each requested value leaves through an Identity of its own, so a value that is itself a (sparse) initializer is an output too.
        var outputs = new List<string>();
        foreach (var value in wanted.Select(w => w.Value).Distinct(StringComparer.Ordinal))
        {
            string output = $"__report_{outputs.Count}";
            model.Graph.Node.Add(new NodeProto { OpType = "Identity", Name = output, Input = { value }, Output = { output } });
            model.Graph.Output.Add(new ValueInfoProto { Name = output });
            outputs.Add(value);
        }

        var runtime = RuntimeOptions.Default with { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var session = OrtSessionFactory.Create(model.ToByteArray(), runtime);
        using var runOptions = new RunOptions();
        var names = Enumerable.Range(0, outputs.Count).Select(k => $"__report_{k}").ToArray();
        using var results = session.Run(runOptions, Array.Empty<string>(), Array.Empty<OrtValue>(), names);
        var values = new Dictionary<string, TensorProto>(StringComparer.Ordinal);
        int k = 0;
        foreach (var v in results)
        {
            string name = outputs[k++];
            if (!v.IsTensor) throw new NotSupportedException($"'{name}' is not a tensor");
            var info = v.GetTensorTypeAndShape();
            if (info.ElementDataType == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.String) throw new NotSupportedException($"'{name}' is a string tensor");
            values[name] = TensorData.FromRaw(name, info.Shape, (OnnxDataType)(int)info.ElementDataType, v.GetTensorMutableRawData());
        }
        return values;
    }
}
