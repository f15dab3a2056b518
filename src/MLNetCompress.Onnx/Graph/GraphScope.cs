using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Onnx;

/// <summary>
/// One graph of a model — the main graph or an If/Loop/Scan body — with producer, consumer and
/// constant indexes that every edit keeps current, so passes never rescan the graph per node.
/// </summary>
public sealed class GraphScope
{
    private readonly Dictionary<string, NodeProto> producers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<NodeProto>> consumers = new(StringComparer.Ordinal);
    // What each node was indexed as reading, so an edit updates exactly the entries it changes.
    private readonly Dictionary<NodeProto, string[]> reads = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, TensorProto> initializers = new(StringComparer.Ordinal);
    private readonly HashSet<string> inputNames = new(StringComparer.Ordinal);
    private readonly List<GraphScope> children = [];

    internal GraphScope(ModelGraph model, GraphProto proto, GraphScope? parent, NodeProto? ownerNode, string path)
    {
        Model = model; Proto = proto; Parent = parent; OwnerNode = ownerNode; Path = path;
    }

    /// <summary>The model this graph belongs to.</summary>
    public ModelGraph Model { get; }

    /// <summary>The enclosing graph, or null for the main graph.</summary>
    public GraphScope? Parent { get; }

    /// <summary>A readable path: <c>main</c>, or <c>main/NODE.then_branch</c> for a subgraph.</summary>
    public string Path { get; }

    /// <summary>The subgraphs owned by this graph's nodes.</summary>
    public IReadOnlyList<GraphScope> Children => children;

    internal GraphProto Proto { get; }

    internal NodeProto? OwnerNode { get; }

    /// <summary>Node count.</summary>
    public int NodeCount => Proto.Node.Count;

    internal IReadOnlyList<NodeProto> Nodes => Proto.Node;

    internal IEnumerable<TensorProto> Initializers => Proto.Initializer;

    /// <summary>Graph inputs that are real inputs (IR 3 models also list initializers as inputs).</summary>
    internal IEnumerable<ValueInfoProto> RealInputs => Proto.Input.Where(i => !initializers.ContainsKey(i.Name));

    // ---- index building -----------------------------------------------------------------------

    internal void Rebuild()
    {
        producers.Clear(); consumers.Clear(); reads.Clear(); initializers.Clear(); inputNames.Clear(); children.Clear();
        foreach (var t in Proto.Initializer) { initializers[t.Name] = t; Model.RegisterName(t.Name); }
        foreach (var t in Proto.SparseInitializer) if (t.Values is not null) Model.RegisterName(t.Values.Name);
        foreach (var i in Proto.Input) { inputNames.Add(i.Name); Model.RegisterName(i.Name); }
        foreach (var n in Proto.Node) Index(n);
    }

    private void Index(NodeProto n)
    {
        foreach (var o in n.Output)
            if (o.Length > 0) producers[o] = n;
        var r = ReadsOf(n).ToArray();
        reads[n] = r;
        foreach (var i in r) AddConsumer(i, n);
        foreach (var (attr, g) in SubgraphsOf(n))
        {
            var child = new GraphScope(Model, g, this, n, $"{Path}/{NodeLabel(n)}.{attr}");
            child.Rebuild();
            children.Add(child);
        }
        Model.RegisterNames(n);
    }

    private void Unindex(NodeProto n)
    {
        foreach (var o in n.Output)
            if (o.Length > 0 && producers.TryGetValue(o, out var p) && ReferenceEquals(p, n)) producers.Remove(o);
        if (reads.Remove(n, out var r))
            foreach (var i in r) RemoveConsumer(i, n);
        children.RemoveAll(c => ReferenceEquals(c.OwnerNode, n));
    }

    // Re-reads what a node reads (its inputs and its subgraphs' free values) and updates the consumer index.
    private void RefreshReads(NodeProto n)
    {
        var now = ReadsOf(n).ToArray();
        var before = reads.GetValueOrDefault(n) ?? [];
        foreach (var v in before) if (Array.IndexOf(now, v) < 0) RemoveConsumer(v, n);
        foreach (var v in now) if (Array.IndexOf(before, v) < 0) AddConsumer(v, n);
        reads[n] = now;
    }

    // An edit inside a subgraph can change what the subgraph reads from enclosing graphs: the owner
    // node's consumer entries in every enclosing graph follow.
    private void EditedReads()
    {
        for (var s = this; s.Parent is not null; s = s.Parent)
            s.Parent.RefreshReads(s.OwnerNode!);
    }

    private void AddConsumer(string value, NodeProto n)
    {
        if (!consumers.TryGetValue(value, out var list)) consumers[value] = list = [];
        if (!list.Exists(x => ReferenceEquals(x, n))) list.Add(n);
    }

    private void RemoveConsumer(string value, NodeProto n)
    {
        if (consumers.TryGetValue(value, out var list))
        {
            list.RemoveAll(x => ReferenceEquals(x, n));
            if (list.Count == 0) consumers.Remove(value);
        }
    }

    /// <summary>Values a node reads: its inputs plus what its subgraphs take from this scope.</summary>
    internal static IEnumerable<string> ReadsOf(NodeProto n)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var i in n.Input)
            if (i.Length > 0 && seen.Add(i)) yield return i;
        foreach (var (_, g) in SubgraphsOf(n))
            foreach (var v in FreeValues(g))
                if (seen.Add(v)) yield return v;
    }

    /// <summary>Values a subgraph reads from enclosing scopes.</summary>
    internal static IEnumerable<string> FreeValues(GraphProto g)
    {
        var defined = new HashSet<string>(StringComparer.Ordinal);
        foreach (var i in g.Input) defined.Add(i.Name);
        foreach (var t in g.Initializer) defined.Add(t.Name);
        foreach (var s in g.SparseInitializer) if (s.Values is not null) defined.Add(s.Values.Name);
        var free = new List<string>();
        foreach (var n in g.Node)
        {
            foreach (var v in ReadsOf(n))
                if (!defined.Contains(v)) free.Add(v);
            foreach (var o in n.Output) defined.Add(o);
        }
        foreach (var o in g.Output)
            if (!defined.Contains(o.Name)) free.Add(o.Name);
        return free.Distinct(StringComparer.Ordinal);
    }

    internal static IEnumerable<(string Attribute, GraphProto Graph)> SubgraphsOf(NodeProto n)
    {
        foreach (var a in n.Attribute)
        {
            if (a.G is not null) yield return (a.Name, a.G);
            for (int k = 0; k < a.Graphs.Count; k++) yield return ($"{a.Name}[{k}]", a.Graphs[k]);
        }
    }

    internal static string NodeLabel(NodeProto n) => n.Name.Length > 0 ? n.Name : $"{n.OpType}({string.Join(",", n.Output)})";

    // ---- queries ------------------------------------------------------------------------------

    /// <summary>The node producing a value in this graph, or null (graph input, initializer or outer value).</summary>
    internal NodeProto? Producer(string value) => producers.GetValueOrDefault(value);

    /// <summary>The nodes of this graph that read a value (a node whose subgraph reads it counts).</summary>
    internal IReadOnlyList<NodeProto> Consumers(string value) =>
        consumers.TryGetValue(value, out var list) ? list : [];

    /// <summary>True when a graph output of this graph is the value.</summary>
    public bool IsGraphOutput(string value) => Proto.Output.Any(o => o.Name == value);

    /// <summary>True when the value is a graph input of this graph.</summary>
    public bool IsGraphInput(string value) => inputNames.Contains(value) && !initializers.ContainsKey(value);

    internal TensorProto? Initializer(string name) => initializers.GetValueOrDefault(name);

    /// <summary>The constant tensor behind a value of this graph, whether initializer or Constant node; null if not constant.</summary>
    internal TensorProto? ConstantValue(string name)
    {
        if (initializers.TryGetValue(name, out var t)) return t;
        var p = Producer(name);
        return p is { OpType: "Constant", Domain: "" or "ai.onnx" } ? ConstantNodeTensor(p) : null;
    }

    internal static TensorProto? ConstantNodeTensor(NodeProto node)
    {
        foreach (var a in node.Attribute)
        {
            var t = a.Name switch
            {
                "value" => a.T,
                "value_float" => TensorData.FromFloats(node.Output[0], [], [a.F]),
                "value_floats" => TensorData.FromFloats(node.Output[0], [a.Floats.Count], a.Floats.ToArray()),
                "value_int" => TensorData.FromInt64(node.Output[0], [], [a.I]),
                "value_ints" => TensorData.FromInt64(node.Output[0], [a.Ints.Count], a.Ints.ToArray()),
                _ => null,
            };
            if (t is not null) return t;
        }
        return null;
    }

    // ---- edits --------------------------------------------------------------------------------

    /// <summary>Inserts a node at <paramref name="index"/> (default: the end) and indexes it.</summary>
    internal void AddNode(NodeProto node, int? index = null)
    {
        if (index is int i) Proto.Node.Insert(i, node); else Proto.Node.Add(node);
        Index(node);
        EditedReads();
    }

    /// <summary>Inserts a node just before another (the usual place for a node that feeds it).</summary>
    internal void InsertBefore(NodeProto node, NodeProto before)
    {
        int at = IndexOfSame(Proto.Node, before);
        if (at < 0) throw new InvalidOperationException($"node '{NodeLabel(before)}' is not in graph {Path}.");
        AddNode(node, at);
    }

    /// <summary>Removes a node and its index entries.</summary>
    internal void RemoveNode(NodeProto node)
    {
        int at = IndexOfSame(Proto.Node, node);
        if (at < 0) throw new InvalidOperationException($"node '{NodeLabel(node)}' is not in graph {Path}.");
        Proto.Node.RemoveAt(at);
        Unindex(node);
        EditedReads();
    }

    /// <summary>Removes many nodes in one sweep of the node list.</summary>
    internal void RemoveNodes(IReadOnlyCollection<NodeProto> nodes)
    {
        if (nodes.Count == 0) return;
        var set = new HashSet<NodeProto>(nodes, ReferenceEqualityComparer.Instance);
        var keep = Proto.Node.Where(n => !set.Contains(n)).ToList();
        Proto.Node.Clear();
        Proto.Node.AddRange(keep);
        foreach (var n in set) Unindex(n);
        EditedReads();
    }

    /// <summary>Makes input <paramref name="index"/> of <paramref name="node"/> read <paramref name="value"/>.</summary>
    internal void SetInput(NodeProto node, int index, string value)
    {
        if (!reads.ContainsKey(node)) throw new InvalidOperationException($"node '{NodeLabel(node)}' is not in graph {Path}.");
        node.Input[index] = value;
        RefreshReads(node);
        EditedReads();
    }

    /// <summary>
    /// Makes every node input that reads <paramref name="oldValue"/> read <paramref name="newValue"/>,
    /// inside subgraphs too (where they do not define a value of that name themselves). The main
    /// graph's outputs are untouched; a subgraph output that names the value follows it.
    /// </summary>
    internal void ReplaceUses(string oldValue, string newValue)
    {
        foreach (var n in Consumers(oldValue).ToList())
        {
            for (int k = 0; k < n.Input.Count; k++)
                if (n.Input[k] == oldValue) SetInput(n, k, newValue);
            foreach (var child in children.Where(c => ReferenceEquals(c.OwnerNode, n)).ToList())
                if (!child.Defines(oldValue)) child.ReplaceUses(oldValue, newValue);
        }
        if (Parent is not null && !Defines(oldValue))
        {
            bool renamed = false;
            foreach (var o in Proto.Output)
                if (o.Name == oldValue) { o.Name = newValue; renamed = true; }
            if (renamed) EditedReads();
        }
    }

    // Protobuf messages compare by value: two identical nodes are Equal, so lookups go by reference.
    private static int IndexOfSame<T>(IList<T> list, T item) where T : class
    {
        for (int i = 0; i < list.Count; i++)
            if (ReferenceEquals(list[i], item)) return i;
        return -1;
    }

    private bool Defines(string value) => producers.ContainsKey(value) || initializers.ContainsKey(value) || inputNames.Contains(value);

    /// <summary>Adds an initializer (its name must be new in the model).</summary>
    internal void AddInitializer(TensorProto tensor)
    {
        if (initializers.ContainsKey(tensor.Name) || producers.ContainsKey(tensor.Name) || IsGraphInput(tensor.Name))
            throw new InvalidOperationException($"'{tensor.Name}' is already a value of graph {Path}; take a name from ModelGraph.UniqueName.");
        Proto.Initializer.Add(tensor);
        initializers[tensor.Name] = tensor;
        Model.RegisterName(tensor.Name);
        EditedReads();
    }

    /// <summary>Removes an initializer, and its graph-input entry in IR 3 models.</summary>
    internal void RemoveInitializer(string name)
    {
        if (!initializers.Remove(name, out var t)) return;
        Proto.Initializer.RemoveAt(IndexOfSame(Proto.Initializer, t));
        int input = Proto.Input.ToList().FindIndex(i => i.Name == name);
        if (input >= 0) { Proto.Input.RemoveAt(input); inputNames.Remove(name); }
        EditedReads();
    }

    /// <summary>
    /// Replaces the payload of a constant (initializer or Constant node) keeping its name. Where the graph
    /// declares the value's type (an IR 3 graph input, a value_info entry), the declaration follows the
    /// new tensor's type and shape.
    /// </summary>
    internal void ReplaceConstant(string name, TensorProto tensor)
    {
        tensor.Name = name;
        if (initializers.TryGetValue(name, out var old))
        {
            int at = IndexOfSame(Proto.Initializer, old);
            Proto.Initializer[at] = tensor;
            initializers[name] = tensor;
        }
        else if (Producer(name) is { OpType: "Constant" } p)
        {
            p.Attribute.Clear();
            p.Attribute.Add(new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = tensor });
        }
        else throw new InvalidOperationException($"'{name}' is not a constant of graph {Path}.");
        foreach (var v in Proto.Input.Concat(Proto.ValueInfo))
        {
            if (v.Name != name || v.Type?.TensorType is not { } tt) continue;
            tt.ElemType = tensor.DataType;
            tt.Shape = new TensorShapeProto();
            foreach (long d in tensor.Dims) tt.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        }
    }

    /// <summary>Removes the initializers and Constant nodes nothing reads any more.</summary>
    internal int RemoveUnusedConstants()
    {
        int removed = 0;
        foreach (var t in Proto.Initializer.ToList())
            if (Consumers(t.Name).Count == 0 && !IsGraphOutput(t.Name)) { RemoveInitializer(t.Name); removed++; }
        var dead = Proto.Node.Where(n => n.OpType == "Constant" && n.Output.All(o => Consumers(o).Count == 0 && !IsGraphOutput(o))).ToList();
        RemoveNodes(dead);
        return removed + dead.Count;
    }

    /// <summary>
    /// Sorts nodes topologically (stable: keeps the given order where it is already valid).
    /// Throws when the graph has a cycle or reads a value nothing defines.
    /// </summary>
    internal bool TopologicalSort()
    {
        var nodes = Proto.Node.ToList();
        var available = new HashSet<string>(StringComparer.Ordinal) { "" };
        foreach (var i in Proto.Input) available.Add(i.Name);
        foreach (var t in Proto.Initializer) available.Add(t.Name);
        foreach (var s in Proto.SparseInitializer) if (s.Values is not null) available.Add(s.Values.Name);
        var produced = new HashSet<string>(nodes.SelectMany(n => n.Output), StringComparer.Ordinal);
        // Values from enclosing scopes count as available: they are checked in the parent.
        var pending = new int[nodes.Count];
        var waiting = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var ready = new PriorityQueue<int, int>();
        for (int k = 0; k < nodes.Count; k++)
        {
            foreach (var v in ReadsOf(nodes[k]))
            {
                if (available.Contains(v) || !produced.Contains(v)) continue;
                pending[k]++;
                if (!waiting.TryGetValue(v, out var l)) waiting[v] = l = [];
                l.Add(k);
            }
            if (pending[k] == 0) ready.Enqueue(k, k);
        }
        var order = new List<NodeProto>(nodes.Count);
        while (ready.TryDequeue(out int k, out _))
        {
            order.Add(nodes[k]);
            foreach (var o in nodes[k].Output)
                if (waiting.Remove(o, out var ws))
                    foreach (int w in ws)
                        if (--pending[w] == 0) ready.Enqueue(w, w);
        }
        if (order.Count != nodes.Count)
        {
            var stuck = nodes.First(n => !order.Contains(n));
            throw new OnnxFormatException($"graph {Path} has a cycle through node '{NodeLabel(stuck)}' ({stuck.OpType}); ONNX graphs must be acyclic.");
        }
        bool changed = !order.SequenceEqual(nodes);
        if (changed)
        {
            Proto.Node.Clear();
            Proto.Node.AddRange(order);
        }
        return changed;
    }

    /// <summary>Every value name this graph defines (inputs, initializers, node outputs).</summary>
    internal IEnumerable<string> DefinedValues()
    {
        foreach (var i in Proto.Input) yield return i.Name;
        foreach (var t in Proto.Initializer) yield return t.Name;
        foreach (var n in Proto.Node) foreach (var o in n.Output) if (o.Length > 0) yield return o;
    }

    /// <summary>For tests: true when the incremental indexes equal a full rebuild.</summary>
    internal bool IndexesMatchRebuild(out string difference)
    {
        var fresh = new GraphScope(Model, Proto, Parent, OwnerNode, Path);
        fresh.RebuildQuiet();
        difference = "";
        foreach (var (k, v) in fresh.producers)
            if (!producers.TryGetValue(k, out var p) || !ReferenceEquals(p, v)) { difference = $"producer of '{k}'"; return false; }
        if (producers.Count != fresh.producers.Count) { difference = "stale producer entries"; return false; }
        foreach (var (k, v) in fresh.consumers)
            if (!consumers.TryGetValue(k, out var c) || c.Count != v.Count || !c.ToHashSet(ReferenceEqualityComparer.Instance).SetEquals(v)) { difference = $"consumers of '{k}'"; return false; }
        if (consumers.Count != fresh.consumers.Count) { difference = "stale consumer entries"; return false; }
        if (initializers.Count != fresh.initializers.Count || fresh.initializers.Any(kv => !initializers.TryGetValue(kv.Key, out var t) || !ReferenceEquals(t, kv.Value)))
        { difference = "initializers"; return false; }
        if (!inputNames.SetEquals(fresh.inputNames)) { difference = "graph inputs"; return false; }
        var owners = Proto.Node.Where(n => SubgraphsOf(n).Any()).SelectMany(n => SubgraphsOf(n).Select(sg => (n, sg.Graph))).ToList();
        if (owners.Count != children.Count || owners.Any(o => !children.Any(c => ReferenceEquals(c.OwnerNode, o.n) && ReferenceEquals(c.Proto, o.Graph) && ReferenceEquals(c.Parent, this))))
        { difference = "subgraph scopes"; return false; }
        return true;
    }

    private void RebuildQuiet()
    {
        foreach (var t in Proto.Initializer) initializers[t.Name] = t;
        foreach (var i in Proto.Input) inputNames.Add(i.Name);
        foreach (var n in Proto.Node)
        {
            foreach (var o in n.Output) if (o.Length > 0) producers[o] = n;
            foreach (var i in ReadsOf(n)) AddConsumer(i, n);
        }
    }
}
