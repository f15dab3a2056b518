using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Preparation;

/// <summary>
/// Removes nodes that pass their input through unchanged at inference: Identity, and Dropout (every opset
/// variant: ratio as attribute or input, opset 1–6's <c>is_test</c>, opset 12's <c>training_mode</c> input).
/// Readers of the node's output read its input instead. A graph output keeps its name: the node computing
/// the input is made to produce the output's name, or, where the input is a graph input, an initializer or
/// another output, the node stays.
/// </summary>
/// <remarks>
/// A Dropout whose mask output is read, or whose <c>training_mode</c> input is not a constant false, is left
/// with a reason: it is not an identity then.
/// </remarks>
public sealed class RemoveIdentityPass : GraphPass<RemoveIdentityPass.RemovalPlan>
{
    /// <summary>Creates the pass.</summary>
    public RemoveIdentityPass(RemoveIdentityOptions? options = null) => Options = options ?? new RemoveIdentityOptions();

    /// <summary>The options.</summary>
    public RemoveIdentityOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "remove-identity";

    /// <summary>The nodes the pass will remove, and the ones it leaves with reasons.</summary>
    public sealed class RemovalPlan
    {
        internal RemovalPlan(IReadOnlyList<(GraphScope Scope, NodeProto Node)> nodes, IReadOnlyList<string> skipped)
        {
            Nodes = nodes;
            Skipped = skipped;
        }

        internal IReadOnlyList<(GraphScope Scope, NodeProto Node)> Nodes { get; }

        /// <summary>Number of nodes to remove.</summary>
        public int Count => Nodes.Count;

        /// <summary>One line per pass-through node left, saying why.</summary>
        public IReadOnlyList<string> Skipped { get; }
    }

    /// <inheritdoc />
    protected override RemovalPlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var nodes = new List<(GraphScope, NodeProto)>();
        var skipped = new List<string>();
        foreach (var scope in graph.Scopes)
            foreach (var n in scope.Nodes)
            {
                if (!GraphEdits.IsOnnxDomain(n)) continue;
                string? reason;
                if (n.OpType == "Identity" && Options.Identity) reason = IdentityReason(n);
                else if (n.OpType == "Dropout" && Options.Dropout) reason = DropoutReason(scope, n);
                else continue;
                if (reason is null) nodes.Add((scope, n));
                else skipped.Add($"{GraphEdits.Label(n)} in {scope.Path}: {reason}");
            }
        return new RemovalPlan(nodes, skipped);
    }

    private static string? IdentityReason(NodeProto n) =>
        n.Input.Count != 1 || n.Output.Count != 1 || n.Input[0].Length == 0 ? "it does not have exactly one input and one output" : null;

    private static string? DropoutReason(GraphScope scope, NodeProto n)
    {
        if (n.Input.Count == 0 || n.Input[0].Length == 0 || n.Output.Count == 0) return "it has no data input or output";
        if (n.Output.Count > 1 && n.Output[1].Length > 0 && (scope.Consumers(n.Output[1]).Count > 0 || scope.IsGraphOutput(n.Output[1])))
            return $"its mask output '{n.Output[1]}' is read";
        // Opset 12+: training_mode (input 2) makes it random; only an absent or constant-false one is an identity.
        if (n.Input.Count > 2 && n.Input[2].Length > 0)
        {
            var mode = GraphEdits.Constant(scope, n.Input[2]);
            if (mode is null) return $"its training_mode input '{n.Input[2]}' is not a constant";
            if (TensorData.ToFloatArray(mode).Any(v => v != 0)) return "training_mode is true (it drops values at random)";
        }
        return null;
    }

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, RemovalPlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        var changes = new List<string>();
        var skipped = plan.Skipped.ToList();
        foreach (var (scope, n) in plan.Nodes)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            string? reason = Remove(scope, n);
            if (reason is null) changes.Add($"{GraphEdits.Label(n)} in {scope.Path} removed ({n.Input[0]} -> {n.Output[0]})");
            else skipped.Add($"{GraphEdits.Label(n)} in {scope.Path}: {reason}");
        }
        return changes.Count == 0 ? PassResult.Unchanged(Name, skipped) : new PassResult(Name, true, changes, skipped);
    }

    /// <summary>Removes the node, rewiring its readers; returns why it stays when it must.</summary>
    private static string? Remove(GraphScope scope, NodeProto n)
    {
        string input = n.Input[0], output = n.Output[0];
        if (!scope.IsGraphOutput(output))
        {
            scope.RemoveNode(n);
            scope.ReplaceUses(output, input);
            GraphEdits.DropValueInfo(scope, output);
            return null;
        }
        // The output is a graph output: its name must stay, so the input's producer takes it over.
        var producer = scope.Producer(input);
        if (producer is null) return $"it copies '{input}' (a graph input, initializer or outer value) to graph output '{output}'";
        if (scope.IsGraphOutput(input)) return $"it copies graph output '{input}' to graph output '{output}'";
        scope.RemoveNode(n);
        GraphEdits.RenameOutput(scope, producer, producer.Output.IndexOf(input), output);
        scope.ReplaceUses(input, output);
        return null;
    }
}
