using System.Collections.Frozen;
using System.Globalization;
using Google.Protobuf;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Runtime;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Preparation;

/// <summary>
/// Replaces nodes whose inputs are all constants by initializers holding their results. The results are
/// computed by ONNX Runtime itself: the constant subgraph of each graph is cut out into a small model with
/// no inputs, run once, and its outputs stored. No op semantics are reimplemented here.
/// </summary>
/// <remarks>
/// Left alone, with a reason: random ops (their value differs per run), QuantizeLinear/DequantizeLinear
/// (QDQ models need them in place to be fused), Casts of 8-bit-or-narrower integer constants (compressed weight
/// storage, see <see cref="ConstantFoldingOptions.KeepLowBitStorage"/>), nodes with subgraphs, sequence and
/// optional ops, non-ai.onnx domains, nodes producing a graph output, and values larger than
/// <see cref="ConstantFoldingOptions.MaxOutputBytes"/>. Values computed from graph inputs — e.g. Shape of a
/// dynamic input and the Gather/Concat after it — are not constant and are never folded.
/// </remarks>
public sealed class ConstantFoldingPass : GraphPass<ConstantFoldingPass.FoldingPlan>
{
    private static readonly FrozenSet<string> Random = new[]
    {
        "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli", "Dropout",
    }.ToFrozenSet(StringComparer.Ordinal);

    private static readonly FrozenSet<string> Qdq = new[]
    {
        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
    }.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>Creates the pass.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public ConstantFoldingPass(ConstantFoldingOptions? options = null)
    {
        Options = options ?? new ConstantFoldingOptions();
        Options.Validate();
    }

    /// <summary>The options.</summary>
    public ConstantFoldingOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "constant-folding";

    /// <summary>The constant nodes found per graph, and the nodes left with reasons.</summary>
    public sealed class FoldingPlan
    {
        internal FoldingPlan(IReadOnlyList<(GraphScope Scope, List<NodeProto> Nodes)> groups, IReadOnlyList<string> skipped)
        {
            Groups = groups;
            Skipped = skipped;
        }

        internal IReadOnlyList<(GraphScope Scope, List<NodeProto> Nodes)> Groups { get; }

        /// <summary>Number of nodes whose inputs are all constant.</summary>
        public int Count => Groups.Sum(g => g.Nodes.Count);

        /// <summary>One line per node with constant inputs that is not folded, saying why.</summary>
        public IReadOnlyList<string> Skipped { get; }
    }


    /// <inheritdoc />
    protected override FoldingPlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var groups = new List<(GraphScope, List<NodeProto>)>();
        var skipped = new List<string>();
        foreach (var scope in graph.Scopes)
        {
            // Values known here: outputs of nodes already found foldable (the graph is in topological order).
            var known = new HashSet<string>(StringComparer.Ordinal);
            var nodes = new List<NodeProto>();
            foreach (var n in scope.Nodes)
            {
                if (n.OpType == "Constant" && GraphEdits.IsOnnxDomain(n)) continue;
                // A node without inputs (other than Constant) is a random generator or a sequence: never folded.
                bool allConstant = n.Input.Count > 0;
                foreach (var i in n.Input)
                    if (i.Length > 0 && !known.Contains(i) && GraphEdits.Constant(scope, i) is null) { allConstant = false; break; }
                if (!allConstant) continue;
                string? reason = Refusal(scope, n);
                if (reason is not null)
                {
                    skipped.Add($"{GraphEdits.Label(n)} in {scope.Path}: {reason}");
                    continue;
                }
                nodes.Add(n);
                foreach (var o in n.Output) if (o.Length > 0) known.Add(o);
            }
            if (nodes.Count > 0) groups.Add((scope, nodes));
        }
        return new FoldingPlan(groups, skipped);
    }

    private string? Refusal(GraphScope scope, NodeProto n)
    {
        if (!GraphEdits.IsOnnxDomain(n)) return $"domain '{n.Domain}' is not ai.onnx";
        if (Random.Contains(n.OpType)) return "a random op gives a different value on every run";
        if (Qdq.Contains(n.OpType)) return "QuantizeLinear/DequantizeLinear stay for ONNX Runtime's QDQ fusion";
        if (n.OpType.StartsWith("Sequence", StringComparison.Ordinal) || n.OpType.StartsWith("Optional", StringComparison.Ordinal)
            || n.OpType is "SplitToSequence" or "ConcatFromSequence")
            return "its values are sequences or optionals, not tensors";
        if (GraphScope.SubgraphsOf(n).Any()) return "it has a subgraph";
        if (n.Output.Any(o => o.Length > 0 && scope.IsGraphOutput(o))) return "it produces a graph output";
        if (Options.KeepLowBitStorage && n.OpType == "Cast" && GraphEdits.Constant(scope, n.Input[0]) is { } t
            && OnnxDataTypes.BitsPerElement(OnnxDataTypes.FromWire(t.DataType)) <= 8 && OnnxDataTypes.FromWire(t.DataType) != OnnxDataType.Bool)
            return "a cast of low-bit integer storage (kept compressed; ONNX Runtime folds it at load)";
        if (n.OpType == "ConstantOfShape" && GraphEdits.Constant(scope, n.Input[0]) is { } shape)
        {
            var value = GraphEdits.Attribute(n, "value")?.T;
            long bytes = value is null ? 4 : Math.Max(1, OnnxDataTypes.ByteCount(OnnxDataTypes.FromWire(value.DataType), 1));
            foreach (long d in TensorData.ToInt64Array(shape)) bytes = d <= 0 ? 0 : bytes > long.MaxValue / d ? long.MaxValue : bytes * d;
            if (bytes > Options.MaxEvaluationBytes) return $"its output would take {bytes} bytes, over MaxEvaluationBytes {Options.MaxEvaluationBytes}";
        }
        return null;
    }

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, FoldingPlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        var changes = new List<string>();
        var skipped = plan.Skipped.ToList();
        for (int g = 0; g < plan.Groups.Count; g++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "evaluate", g, plan.Groups.Count);
            var (scope, nodes) = plan.Groups[g];
            FoldGroup(graph, scope, nodes, changes, skipped);
        }
        context.Report(Name, "evaluate", plan.Groups.Count, plan.Groups.Count);
        return changes.Count == 0 ? PassResult.Unchanged(Name, skipped) : new PassResult(Name, true, changes, skipped);
    }

    private void FoldGroup(ModelGraph graph, GraphScope scope, List<NodeProto> nodes, List<string> changes, List<string> skipped)
    {
        var inGroup = new HashSet<NodeProto>(nodes, ReferenceEqualityComparer.Instance);
        var producedBy = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var n in nodes)
            foreach (var o in n.Output) if (o.Length > 0) producedBy[o] = n;

        // Values the rest of the graph reads from the group.
        var boundary = producedBy.Keys.Where(v => scope.Consumers(v).Any(c => !inGroup.Contains(c))).ToList();
        if (boundary.Count == 0) return;

        Dictionary<string, TensorProto> values;
        try
        {
            values = Evaluate(graph, scope, nodes, producedBy.Keys.ToList());
        }
        catch (Exception e) when (e is OnnxRuntimeException or OrtRuntimeException or NotSupportedException)
        {
            skipped.Add($"{nodes.Count} constant nodes in {scope.Path}: ONNX Runtime could not evaluate them ({OrtRuntimeException.OneLine(e)})");
            return;
        }

        // A boundary value too large to store keeps its producer, whose own inputs then become the boundary.
        var keep = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var materialize = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>(boundary);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (pending.Count > 0)
        {
            string v = pending.Pop();
            if (!seen.Add(v)) continue;
            var t = values[v];
            if (t.RawData.Length <= Options.MaxOutputBytes) { materialize.Add(v); continue; }
            var p = producedBy[v];
            if (!keep.Add(p)) continue;
            skipped.Add($"{GraphEdits.Label(p)} in {scope.Path}: its output '{v}' is {t.RawData.Length} bytes, over MaxOutputBytes {Options.MaxOutputBytes}");
            foreach (var i in p.Input) if (producedBy.ContainsKey(i)) pending.Push(i);
        }

        var remove = nodes.Where(n => !keep.Contains(n)).ToList();
        var readBefore = remove.SelectMany(n => n.Input).Where(i => i.Length > 0 && !producedBy.ContainsKey(i)).Distinct(StringComparer.Ordinal).ToList();
        scope.RemoveNodes(remove);
        foreach (var v in materialize)
        {
            scope.AddInitializer(values[v]);
            GraphEdits.DropValueInfo(scope, v);
        }
        foreach (var n in remove)
            foreach (var o in n.Output)
                if (o.Length > 0 && !materialize.Contains(o)) GraphEdits.DropValueInfo(scope, o);
        foreach (var name in readBefore) GraphEdits.RemoveIfUnused(scope, name);

        foreach (var n in remove)
        {
            var outs = n.Output.Where(o => materialize.Contains(o)).Select(o => Describe(values[o]));
            changes.Add($"{GraphEdits.Label(n)} in {scope.Path} folded" + (outs.Any() ? $" into {string.Join(", ", outs)}" : " (only feeds folded nodes)"));
        }
    }

    private static string Describe(TensorProto t) => string.Create(CultureInfo.InvariantCulture,
        $"{t.Name} {OnnxDataTypes.Name(OnnxDataTypes.FromWire(t.DataType))}[{string.Join(",", t.Dims)}]");

    /// <summary>Runs the nodes in ONNX Runtime as a model with no inputs (its constants as initializers) and returns every output.</summary>
    private static Dictionary<string, TensorProto> Evaluate(ModelGraph graph, GraphScope scope, List<NodeProto> nodes, List<string> outputs)
    {
        var model = new ModelProto
        {
            // IR 3 wants initializers listed as inputs; 4 is the oldest that does not.
            IrVersion = Math.Max(graph.IrVersion, 4),
            Graph = new GraphProto { Name = "constant_subgraph" },
        };
        model.OpsetImport.AddRange(graph.Model.OpsetImport.Select(o => o.Clone()));
        var produced = new HashSet<string>(outputs, StringComparer.Ordinal);
        var added = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in nodes)
        {
            foreach (var i in n.Input)
            {
                if (i.Length == 0 || produced.Contains(i) || !added.Add(i)) continue;
                var t = GraphEdits.Constant(scope, i)!.Clone();
                t.Name = i;
                model.Graph.Initializer.Add(t);
            }
            model.Graph.Node.Add(n.Clone());
        }
        foreach (var o in outputs) model.Graph.Output.Add(new ValueInfoProto { Name = o });

        var runtime = RuntimeOptions.Default with { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var session = OrtSessionFactory.Create(model.ToByteArray(), runtime);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, Array.Empty<string>(), Array.Empty<OrtValue>(), outputs);
        var values = new Dictionary<string, TensorProto>(StringComparer.Ordinal);
        int k = 0;
        foreach (var v in results)
        {
            string name = outputs[k++];
            if (!v.IsTensor) throw new NotSupportedException($"'{name}' is not a tensor");
            var info = v.GetTensorTypeAndShape();
            if (info.ElementDataType == TensorElementType.String) throw new NotSupportedException($"'{name}' is a string tensor");
            var type = (OnnxDataType)(int)info.ElementDataType;
            values[name] = TensorData.FromRaw(name, info.Shape, type, v.GetTensorMutableRawData());
        }
        return values;
    }
}
