using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Preparation;

/// <summary>
/// Fuses <c>MatMul(A, B) → Add(·, C)</c> into <c>Gemm(A, B, C)</c> when that is exactly the same computation: A is
/// provably 2-D, B is a constant 2-D float weight, C is a constant broadcastable along the last axis (<c>[N]</c>,
/// <c>[1,N]</c> or one value), and the MatMul's output feeds only the Add. A fully connected layer exported as
/// MatMul+Add (tf2onnx, Keras, hand-built graphs) then becomes a Gemm, which static QDQ turns into one QGemm instead of
/// a QLinearMatMul plus a quantized Add.
/// </summary>
/// <remarks>
/// Gemm multiplies 2-D matrices only, so the pass never guesses a rank: A counts as 2-D when a shape is declared for it
/// (graph input, value_info) or when it is the output of a Flatten, Gemm, a Reshape to a constant 2-element shape, a
/// MatMul of two 2-D operands, or an element-wise op over such a value. MatMuls over 3-D activations (transformers) are
/// left alone. Needs ai.onnx opset 7 (Gemm broadcasting C without an attribute). Main graph and subgraphs alike.
/// </remarks>
public sealed class FuseMatMulAddPass : GraphPass<FuseMatMulAddPass.FusePlan>
{
    private static readonly HashSet<string> sameShapeUnary = new(StringComparer.Ordinal)
    {
        "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Celu", "Softplus", "Softsign", "HardSigmoid", "HardSwish",
        "Gelu", "Erf", "Clip", "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Identity", "Dropout", "Cast", "Softmax",
        "LogSoftmax", "Mish", "Floor", "Ceil", "Round", "Sign",
    };

    private static readonly HashSet<string> elementwiseBinary = new(StringComparer.Ordinal) { "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min" };

    /// <summary>Creates the pass.</summary>
    public FuseMatMulAddPass(FuseMatMulAddOptions? options = null) => Options = options ?? new FuseMatMulAddOptions();

    /// <summary>The options.</summary>
    public FuseMatMulAddOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "fuse-matmul-add";

    /// <summary>What the pass decided.</summary>
    public sealed class FusePlan
    {
        internal FusePlan(IReadOnlyList<Fusion> fusions, IReadOnlyList<string> skipped)
        {
            Fusions = fusions;
            Skipped = skipped;
        }

        internal IReadOnlyList<Fusion> Fusions { get; }

        /// <summary>Number of MatMul+Add pairs that become a Gemm.</summary>
        public int Count => Fusions.Count;

        /// <summary>One line per MatMul followed by an Add that stays as it is, saying why.</summary>
        public IReadOnlyList<string> Skipped { get; }
    }

    internal sealed record Fusion(GraphScope Scope, NodeProto MatMul, NodeProto Add, string Bias);

    /// <inheritdoc />
    protected override FusePlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(context);
        var fusions = new List<Fusion>();
        var skipped = new List<string>();
        if (graph.OnnxOpset < 7)
            return new FusePlan(fusions, graph.AllNodes.Any(x => x.Node.OpType == "MatMul")
                ? [$"opset {graph.OnnxOpset}: Gemm broadcasts its C input without an attribute only from opset 7; MatMul+Add left as they are."] : []);
        foreach (var scope in graph.Scopes)
        {
            var declared = DeclaredRanks(scope);
            var rank2 = new Dictionary<string, bool>(StringComparer.Ordinal);
            foreach (var mm in scope.Nodes)
            {
                if (mm.OpType != "MatMul" || !GraphEdits.IsOnnxDomain(mm) || mm.Input.Count != 2 || mm.Output.Count != 1) continue;
                string y = mm.Output[0];
                var readers = scope.Consumers(y);
                if (readers.Count != 1 || readers[0].OpType != "Add" || !GraphEdits.IsOnnxDomain(readers[0]) || scope.IsGraphOutput(y)) continue;
                var add = readers[0];
                string? reason = Check(scope, mm, add, declared, rank2, out string? bias);
                if (reason is null) fusions.Add(new Fusion(scope, mm, add, bias!));
                else skipped.Add($"{GraphEdits.Label(mm)} + {GraphEdits.Label(add)} in {scope.Path}: {reason}; left as they are.");
            }
        }
        return new FusePlan(fusions, skipped);
    }

    private string? Check(GraphScope scope, NodeProto mm, NodeProto add, Dictionary<string, int> declared, Dictionary<string, bool> rank2, out string? bias)
    {
        bias = null;
        var b = GraphEdits.Constant(scope, mm.Input[1]);
        if (b is null) return "B is not a constant";
        if (b.Dims.Count != 2) return $"B is {b.Dims.Count}-D, Gemm needs a 2-D weight";
        if (OnnxDataTypes.FromWire(b.DataType) is not (OnnxDataType.Float or OnnxDataType.Double or OnnxDataType.Float16))
            return "B is not a float tensor";
        if (!IsRank2(scope, mm.Input[0], declared, rank2, Options.MaxRankTrace)) return "A is not known to be 2-D (Gemm multiplies matrices only)";
        if (add.Input.Count != 2) return "the Add does not have two inputs";
        string other = add.Input[0] == mm.Output[0] ? add.Input[1] : add.Input[0];
        if (other == mm.Output[0]) return "the Add adds the product to itself";
        var c = GraphEdits.Constant(scope, other);
        if (c is null) return "the added value is not a constant";
        if (c.DataType != b.DataType) return "the added constant's type differs from B's";
        long n = b.Dims[1];
        var dims = c.Dims;
        bool lastAxis = dims.Count switch
        {
            0 => true,
            1 => dims[0] == n || dims[0] == 1,
            2 => dims[0] == 1 && (dims[1] == n || dims[1] == 1),
            _ => false,
        };
        if (!lastAxis) return $"the added constant is [{string.Join(",", dims)}], not broadcastable along the last axis of [M,{n}]";
        bias = other;
        return null;
    }

    /// <summary>Ranks declared for values (graph inputs, outputs and value_info with a shape).</summary>
    private static Dictionary<string, int> DeclaredRanks(GraphScope scope)
    {
        var ranks = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var v in scope.Proto.Input.Concat(scope.Proto.ValueInfo).Concat(scope.Proto.Output))
            if (v.Type?.TensorType?.Shape is { } shape) ranks.TryAdd(v.Name, shape.Dim.Count);
        return ranks;
    }

    /// <summary>True when <paramref name="value"/> is provably 2-D (see the class remarks); memoized per scope.</summary>
    private static bool IsRank2(GraphScope scope, string value, Dictionary<string, int> declared, Dictionary<string, bool> memo, int depth)
    {
        if (memo.TryGetValue(value, out bool known)) return known;
        bool result = Compute();
        memo[value] = result;
        return result;

        bool Compute()
        {
            if (declared.TryGetValue(value, out int rank)) return rank == 2;
            if (scope.ConstantValue(value) is { } constant) return constant.Dims.Count == 2;
            if (depth <= 0 || scope.Producer(value) is not { } p || !GraphEdits.IsOnnxDomain(p) || p.Output[0] != value) return false;
            switch (p.OpType)
            {
                case "Flatten":
                case "Gemm":
                    return true;
                case "Reshape":
                    return p.Input.Count > 1 && GraphEdits.Constant(scope, p.Input[1]) is { } s && TensorData.ElementCount(s.Dims.ToArray(), s.Name) == 2;
                case "MatMul":
                    return IsRank2(scope, p.Input[0], declared, memo, depth - 1) && IsRank2(scope, p.Input[1], declared, memo, depth - 1);
            }
            if (sameShapeUnary.Contains(p.OpType)) return IsRank2(scope, p.Input[0], declared, memo, depth - 1);
            if (elementwiseBinary.Contains(p.OpType) && p.Input.Count == 2)
            {
                // Broadcasting gives the larger rank: 2 when one side is 2-D and the other at most 2-D.
                bool a = IsRank2(scope, p.Input[0], declared, memo, depth - 1), b = IsRank2(scope, p.Input[1], declared, memo, depth - 1);
                return (a && AtMost2(scope, p.Input[1], declared)) || (b && AtMost2(scope, p.Input[0], declared));
            }
            return false;
        }
    }

    private static bool AtMost2(GraphScope scope, string value, Dictionary<string, int> declared) =>
        scope.ConstantValue(value) is { } c ? c.Dims.Count <= 2 : declared.TryGetValue(value, out int r) && r <= 2;

    /// <summary>The bias as one float per output column ([N]), the form QGemm takes as int32 after static QDQ; a [1,N] or
    /// single-value float constant gets a new [N] initializer (the original may be shared). Other types stay as they are.</summary>
    private static string BiasVector(ModelGraph graph, GraphScope scope, Fusion f)
    {
        var c = GraphEdits.Constant(scope, f.Bias)!;
        long n = GraphEdits.Constant(scope, f.MatMul.Input[1])!.Dims[1];
        if (OnnxDataTypes.FromWire(c.DataType) != OnnxDataType.Float || (c.Dims.Count == 1 && c.Dims[0] == n)) return f.Bias;
        var values = TensorData.ToFloatArray(c);
        var vector = new float[n];
        for (long j = 0; j < n; j++) vector[j] = values.Length == 1 ? values[0] : values[j];
        var tensor = TensorData.FromFloats(graph.UniqueName(f.Bias + "_vector"), [n], vector);
        scope.AddInitializer(tensor);
        return tensor.Name;
    }

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, FusePlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(context);
        if (plan.Fusions.Count == 0) return PassResult.Unchanged(Name, plan.Skipped);
        var changes = new List<string>(plan.Fusions.Count);
        foreach (var f in plan.Fusions)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            var scope = f.Scope;
            string name = f.MatMul.Name.Length > 0 ? f.MatMul.Name : f.Add.Name.Length > 0 ? f.Add.Name : "Gemm";
            var gemm = GraphEdits.Node(graph, "Gemm", name + "_gemm", [f.MatMul.Input[0], f.MatMul.Input[1], BiasVector(graph, scope, f)], [f.Add.Output[0]]);
            // At the Add's place: A and B are defined before the MatMul, C before the Add. The two go first, so the
            // Add's output never has two producers.
            int addAt = GraphEdits.IndexOf(scope, f.Add), at = GraphEdits.IndexOf(scope, f.MatMul) < addAt ? addAt - 1 : addAt;
            scope.RemoveNodes([f.MatMul, f.Add]);
            scope.AddNode(gemm, at);
            if (gemm.Input[2] != f.Bias) GraphEdits.RemoveIfUnused(scope, f.Bias);
            GraphEdits.DropValueInfo(scope, f.MatMul.Output[0]);
            changes.Add($"{GraphEdits.Label(f.MatMul)} + {GraphEdits.Label(f.Add)} → Gemm '{gemm.Name}'");
        }
        return new PassResult(Name, true, changes, plan.Skipped);
    }
}
