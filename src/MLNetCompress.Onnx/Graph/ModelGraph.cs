using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Onnx;

/// <summary>
/// A model being edited. Every edit goes through its <see cref="GraphScope"/>s, which keep producer and
/// consumer indexes current. On load the graph is sorted topologically if it is not already, and
/// subgraphs (If/Loop/Scan bodies) are walked so their constants are seen like the main graph's.
/// </summary>
public sealed class ModelGraph
{
    private readonly HashSet<string> names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> nextSuffix = new(StringComparer.Ordinal);

    internal ModelGraph(ModelProto model)
    {
        Model = model;
        RenameDuplicateNodeNames(model.Graph, new HashSet<string>(StringComparer.Ordinal));
        Main = new GraphScope(this, model.Graph, null, null, "main");
        Main.Rebuild(); // registers every name of every graph for UniqueName
        foreach (var scope in Scopes.ToList())
            if (scope.TopologicalSort()) WasReordered = true;
        if (WasReordered) Main.Rebuild();
        // A model that reads undefined values is refused here rather than failing later in a pass.
        var problem = GraphInvariants.FindViolation(this);
        if (problem is not null)
            throw new OnnxFormatException($"the model is not a valid ONNX graph: {problem}.");
    }

    // Node names carry no meaning, but passes name new nodes after old ones and the invariants want them unique.
    private static void RenameDuplicateNodeNames(GraphProto g, HashSet<string> seen)
    {
        foreach (var n in g.Node)
        {
            if (n.Name.Length > 0 && !seen.Add(n.Name))
            {
                int k = 1;
                while (!seen.Add($"{n.Name}_{k}")) k++;
                n.Name = $"{n.Name}_{k}";
            }
            foreach (var (_, sub) in GraphScope.SubgraphsOf(n)) RenameDuplicateNodeNames(sub, seen);
        }
    }

    /// <summary>Reads a model file (external data resolved against its folder).</summary>
    public static ModelGraph Load(string path, ModelReadOptions? options = null) => new(OnnxModelIO.Read(path, options));

    /// <summary>Reads a model from bytes.</summary>
    public static ModelGraph FromBytes(byte[] bytes, ModelReadOptions? options = null) => new(OnnxModelIO.Read(bytes, options));

    /// <summary>Reads a model from a stream.</summary>
    public static ModelGraph FromStream(Stream stream, ModelReadOptions? options = null) =>
        new(OnnxModelIO.Read(stream, "model stream", options ?? new ModelReadOptions()));

    internal static ModelGraph FromProto(ModelProto model) => new(model);

    internal ModelProto Model { get; }

    /// <summary>The main graph.</summary>
    public GraphScope Main { get; }

    /// <summary>True when the model's nodes were not in topological order and were sorted on load.</summary>
    public bool WasReordered { get; }

    /// <summary>Every graph: the main graph first, then subgraphs depth-first.</summary>
    public IEnumerable<GraphScope> Scopes
    {
        get
        {
            var stack = new Stack<GraphScope>();
            stack.Push(Main);
            while (stack.Count > 0)
            {
                var s = stack.Pop();
                yield return s;
                for (int k = s.Children.Count - 1; k >= 0; k--) stack.Push(s.Children[k]);
            }
        }
    }

    /// <summary>IR version.</summary>
    public long IrVersion => Model.IrVersion;

    /// <summary>Producer name and version.</summary>
    public string Producer => (Model.ProducerName + " " + Model.ProducerVersion).Trim();

    /// <summary>Opset per domain ("" is ai.onnx).</summary>
    public IReadOnlyDictionary<string, long> Opsets =>
        Model.OpsetImport.GroupBy(o => o.Domain == "ai.onnx" ? "" : o.Domain).ToDictionary(g => g.Key, g => g.Max(o => o.Version));

    /// <summary>The ai.onnx opset (1 when an old model names none).</summary>
    public long OnnxOpset => Opsets.TryGetValue("", out var v) ? v : 1;

    /// <summary>Sets (or adds) the opset of a domain, e.g. <c>com.microsoft</c>. Never lowers one.</summary>
    internal void RequireOpset(string domain, long version)
    {
        var entry = Model.OpsetImport.FirstOrDefault(o => o.Domain == domain);
        if (entry is null) Model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        else if (entry.Version < version) entry.Version = version;
    }

    /// <summary>Every constant tensor in every graph, initializers and Constant nodes alike.</summary>
    public IEnumerable<ConstantTensor> Constants
    {
        get
        {
            foreach (var scope in Scopes)
            {
                foreach (var t in scope.Proto.Initializer)
                    yield return new ConstantTensor(t.Name, ConstantKind.Initializer, scope, t, null);
                foreach (var n in scope.Proto.Node)
                    if (n is { OpType: "Constant", Domain: "" or "ai.onnx" } && n.Output.Count == 1 && GraphScope.ConstantNodeTensor(n) is { } t)
                        yield return new ConstantTensor(n.Output[0], ConstantKind.ConstantNode, scope, t, n);
            }
        }
    }

    /// <summary>All nodes of every graph with the graph each sits in.</summary>
    internal IEnumerable<(GraphScope Scope, NodeProto Node)> AllNodes =>
        Scopes.SelectMany(s => s.Proto.Node.Select(n => (s, n)));

    /// <summary>The model's input and output signature.</summary>
    public GraphSignature Signature => GraphSignature.Of(Main);

    // ---- names --------------------------------------------------------------------------------

    internal void RegisterName(string name)
    {
        if (name.Length > 0) names.Add(name);
    }

    internal void RegisterNames(NodeProto n)
    {
        RegisterName(n.Name);
        foreach (var o in n.Output) RegisterName(o);
    }

    /// <summary>A name no value or node of the model uses yet (deterministic: prefix, prefix_1, ...).</summary>
    public string UniqueName(string prefix)
    {
        if (names.Add(prefix)) return prefix;
        int k = nextSuffix.GetValueOrDefault(prefix, 1);
        string candidate;
        do candidate = $"{prefix}_{k++}"; while (!names.Add(candidate));
        nextSuffix[prefix] = k;
        return candidate;
    }

    // ---- output ---------------------------------------------------------------------------------

    /// <summary>The serialized model (all tensors inline).</summary>
    public byte[] ToBytes() => OnnxModelIO.ToBytes(Model);

    /// <summary>Writes the model atomically; external data is used automatically past 2 GiB.</summary>
    public void Save(string path, ModelWriteOptions? options = null) => OnnxModelIO.Write(Model, path, options);

    /// <summary>A deep copy to edit while keeping this one.</summary>
    public ModelGraph Clone() => new(Model.Clone());
}
