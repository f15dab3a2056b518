namespace MLNetCompress.Onnx;

/// <summary>
/// The invariants every edit must keep: inputs and outputs unchanged, every value defined before it is
/// read, topological order, one producer per value, unique node names.
/// </summary>
public static class GraphInvariants
{
    /// <summary>The first broken invariant as one line, or null when the graph is sound.</summary>
    public static string? FindViolation(ModelGraph graph, GraphSignature? expected = null)
    {
        if (expected is not null)
        {
            var now = graph.Signature;
            var lost = expected.Inputs.FirstOrDefault(e => !now.Inputs.Any(n => n.SameAs(e)));
            if (lost is not null) return $"graph input '{lost.Name}' ({lost}) was changed or removed";
            if (now.Inputs.Count != expected.Inputs.Count) return $"graph inputs changed from {expected.Inputs.Count} to {now.Inputs.Count}";
            for (int k = 0; k < expected.Outputs.Count; k++)
                if (k >= now.Outputs.Count || now.Outputs[k].Name != expected.Outputs[k].Name || now.Outputs[k].ElementType != expected.Outputs[k].ElementType)
                    return $"graph output '{expected.Outputs[k].Name}' was changed or removed";
            if (now.Outputs.Count != expected.Outputs.Count) return $"graph outputs changed from {expected.Outputs.Count} to {now.Outputs.Count}";
        }
        var nodeNames = new HashSet<string>(StringComparer.Ordinal);
        return Check(graph.Main, new HashSet<string>(StringComparer.Ordinal), nodeNames);
    }

    /// <summary>Throws <see cref="OnnxFormatException"/> naming the broken invariant.</summary>
    public static void Check(ModelGraph graph, GraphSignature? expected = null)
    {
        var v = FindViolation(graph, expected);
        if (v is not null) throw new OnnxFormatException($"invalid graph: {v}.");
    }

    private static string? Check(GraphScope scope, HashSet<string> outer, HashSet<string> nodeNames)
    {
        var defined = new HashSet<string>(outer, StringComparer.Ordinal) { "" };
        var producedHere = new HashSet<string>(StringComparer.Ordinal);
        foreach (var i in scope.Proto.Input) defined.Add(i.Name);
        var initializerNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in scope.Proto.Initializer)
            if (!initializerNames.Add(t.Name)) return $"initializer '{t.Name}' of {scope.Path} is defined twice";
        var inputNames = new HashSet<string>(scope.Proto.Input.Select(i => i.Name), StringComparer.Ordinal);
        defined.UnionWith(initializerNames);
        foreach (var s in scope.Proto.SparseInitializer) if (s.Values is not null) defined.Add(s.Values.Name);
        var laterOutputs = new HashSet<string>(scope.Proto.Node.SelectMany(n => n.Output), StringComparer.Ordinal);
        foreach (var n in scope.Proto.Node)
        {
            string label = GraphScope.NodeLabel(n);
            if (n.Name.Length > 0 && !nodeNames.Add(n.Name))
                return $"node name '{n.Name}' is used twice";
            foreach (var i in n.Input)
            {
                if (defined.Contains(i)) continue;
                return laterOutputs.Contains(i)
                    ? $"node '{label}' ({n.OpType}) in {scope.Path} reads '{i}' before it is computed (not in topological order)"
                    : $"node '{label}' ({n.OpType}) in {scope.Path} reads '{i}', which nothing defines";
            }
            foreach (var child in scope.Children.Where(c => ReferenceEquals(c.OwnerNode, n)))
            {
                var problem = Check(child, defined, nodeNames);
                if (problem is not null) return problem;
            }
            foreach (var o in n.Output)
            {
                if (o.Length == 0) continue;
                if (!producedHere.Add(o) || initializerNames.Contains(o) || inputNames.Contains(o))
                    return $"value '{o}' in {scope.Path} is produced twice";
                defined.Add(o);
            }
        }
        foreach (var o in scope.Proto.Output)
            if (!defined.Contains(o.Name))
                return $"graph output '{o.Name}' of {scope.Path} is not computed by any node";
        return null;
    }
}
