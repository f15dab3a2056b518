using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Preparation;

/// <summary>The upgrade cannot keep the model's meaning: an op changed between the model's opset and the target in a way the pass does not rewrite.</summary>
public sealed class OpsetUpgradeException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public OpsetUpgradeException(string op, long version, string message) : base(message)
    {
        Op = op;
        Version = version;
    }

    /// <summary>The op that blocks the upgrade.</summary>
    public string Op { get; }

    /// <summary>The opset version at which its meaning changed.</summary>
    public long Version { get; }
}

/// <summary>
/// Raises a model's ai.onnx opset to <see cref="OpsetUpgradeOptions.TargetOpset"/>, rewriting every node whose
/// op changed meaning on the way (attributes that became inputs, Softmax's axis semantics, removed
/// attributes, Upsample → Resize, ...) so the upgraded model computes what the original did. Each op's changes
/// come from the ONNX operator changelog (<see cref="OpsetChangelog"/>); a change that only adds types or
/// optional features needs no edit. A change the pass cannot rewrite — or an op it does not know — stops the
/// upgrade before anything is edited, with an <see cref="OpsetUpgradeException"/> naming the op and version.
/// </summary>
/// <remarks>
/// The model's <c>opset_import</c> for ai.onnx is set to the target and its IR version raised to the lowest one
/// that carries the target. An IR 3 model lists its initializers among its graph inputs; from IR 4 such an
/// entry would make the weight an overridable input, so those entries are dropped when the IR version is
/// raised (the real inputs are unchanged). Other domains (com.microsoft, ai.onnx.ml) are left as they are.
/// </remarks>
public sealed class OpsetUpgradePass : GraphPass<OpsetUpgradePass.UpgradePlan>
{
    /// <summary>Creates the pass.</summary>
    /// <exception cref="ArgumentException">The target opset is out of range.</exception>
    public OpsetUpgradePass(OpsetUpgradeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
    }

    /// <summary>Creates the pass for a target opset.</summary>
    public OpsetUpgradePass(long targetOpset) : this(new OpsetUpgradeOptions { TargetOpset = targetOpset })
    {
    }

    /// <summary>The options.</summary>
    public OpsetUpgradeOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "opset-upgrade";

    /// <summary>The rewrites the upgrade needs: one per node and changed version.</summary>
    public sealed class UpgradePlan
    {
        internal UpgradePlan(long from, long to, IReadOnlyList<(GraphScope Scope, NodeProto Node, List<(int Version, OpsetAdapter Adapter)> Steps)> nodes)
        {
            From = from;
            To = to;
            Nodes = nodes;
        }

        /// <summary>The model's ai.onnx opset.</summary>
        public long From { get; }

        /// <summary>The target opset.</summary>
        public long To { get; }

        internal IReadOnlyList<(GraphScope Scope, NodeProto Node, List<(int Version, OpsetAdapter Adapter)> Steps)> Nodes { get; }

        /// <summary>Number of node rewrites planned.</summary>
        public int Rewrites => Nodes.Sum(n => n.Steps.Count);
    }


    /// <inheritdoc />
    protected override UpgradePlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        long from = graph.OnnxOpset, to = Options.TargetOpset;
        if (to < from)
            throw new OpsetUpgradeException("", to, $"the model uses ai.onnx opset {from}; the upgrade target {to} is lower (downgrades are not supported).");
        var nodes = new List<(GraphScope, NodeProto, List<(int, OpsetAdapter)>)>();
        foreach (var scope in graph.Scopes)
        {
            var step = new UpgradeStep(graph, scope, to);
            foreach (var n in scope.Nodes)
            {
                if (!GraphEdits.IsOnnxDomain(n)) continue;
                var steps = PlanNode(step, n, from, to);
                if (steps.Count > 0) nodes.Add((scope, n, steps));
            }
        }
        return new UpgradePlan(from, to, nodes);
    }

    /// <summary>The adapters a node needs, version by version (following a rename such as Upsample → Resize).</summary>
    private static List<(int, OpsetAdapter)> PlanNode(UpgradeStep step, NodeProto n, long from, long to)
    {
        var steps = new List<(int, OpsetAdapter)>();
        string op = n.OpType;
        if (!OpsetChangelog.Knows(op))
            throw new OpsetUpgradeException(op, to, $"cannot upgrade {GraphEdits.Label(n)} from opset {from} to {to}: op '{op}' is not in the ai.onnx changelog this pass knows, so it cannot tell whether its meaning changed.");
        if (OpsetChangelog.VersionAt(op, from) is null)
            throw new OpsetUpgradeException(op, from, $"{GraphEdits.Label(n)} does not exist at ai.onnx opset {from}; the model is not valid for its own opset.");
        long at = from;
        while (OpsetChangelog.NextChange(op, at, to) is int v)
        {
            if (OpsetAdapters.All.TryGetValue($"{op}-{v}", out var adapter))
            {
                // Checks run on the node as it is; a rename's follow-up steps are checked on the original node.
                string? refusal = adapter.Check(step, n);
                if (refusal is not null)
                    throw new OpsetUpgradeException(op, v, $"cannot upgrade {GraphEdits.Label(n)} to opset {to}: {op} changed meaning at opset {v} and {refusal}.");
                steps.Add((v, adapter));
                if (adapter.RenamesTo is { } renamed) op = renamed;
            }
            else if (!OpsetChangelog.IsCompatible(op, v))
            {
                throw new OpsetUpgradeException(op, v,
                    $"cannot upgrade {GraphEdits.Label(n)} to opset {to}: {op} changed meaning at opset {v} and this pass has no rewrite for that change; upgrade to opset {v - 1} or lower, or convert the node first.");
            }
            at = v;
        }
        return steps;
    }

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, UpgradePlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        var changes = new List<string>();
        for (int k = 0; k < plan.Nodes.Count; k++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "rewrite", k, plan.Nodes.Count);
            var (scope, node, steps) = plan.Nodes[k];
            var step = new UpgradeStep(graph, scope, plan.To);
            foreach (var (version, adapter) in steps)
            {
                string op = node.OpType;
                string what = adapter.Apply(step, node);
                // Adapters say "no ..." when the node already had the new form: not a change.
                if (!what.StartsWith("no ", StringComparison.Ordinal))
                    changes.Add($"{op} '{GraphScope.NodeLabel(node)}' in {scope.Path} at opset {version}: {what}");
            }
        }
        context.Report(Name, "rewrite", plan.Nodes.Count, plan.Nodes.Count);

        if (plan.To != plan.From)
        {
            SetOpset(graph, plan.To);
            changes.Add($"ai.onnx opset {plan.From} -> {plan.To}");
        }
        long ir = OpsetChangelog.MinIrVersion(plan.To);
        if (Options.RaiseIrVersion && graph.Model.IrVersion < ir)
        {
            if (graph.Model.IrVersion < 4) DropInitializerInputs(graph);
            changes.Add($"IR version {graph.Model.IrVersion} -> {ir}");
            graph.Model.IrVersion = ir;
        }
        return changes.Count == 0 ? PassResult.Unchanged(Name) : new PassResult(Name, true, changes, []);
    }

    private static void SetOpset(ModelGraph graph, long target)
    {
        var imports = graph.Model.OpsetImport;
        for (int k = imports.Count - 1; k >= 0; k--)
            if (imports[k].Domain is "" or "ai.onnx") imports.RemoveAt(k);
        imports.Insert(0, new OperatorSetIdProto { Domain = "", Version = target });
    }

    // From IR 4 an initializer listed as a graph input is a default the caller may replace: in IR 3 it was a constant.
    private static void DropInitializerInputs(ModelGraph graph)
    {
        foreach (var scope in graph.Scopes.ToList())
        {
            var inputs = scope.Proto.Input;
            for (int k = inputs.Count - 1; k >= 0; k--)
                if (scope.Initializer(inputs[k].Name) is not null) inputs.RemoveAt(k);
        }
        graph.Main.Rebuild(); // the graph-input index follows (subgraphs are rebuilt with it)
    }
}
