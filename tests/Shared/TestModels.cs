using System.Buffers.Binary;
using Google.Protobuf;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Testing;

// Small ONNX models built in code for tests. Tensors are encoded here by hand (little-endian bytes,
// typed fields per onnx.proto), independently of the library's TensorData, so tests can check the
// library against them. The types are internal because the ONNX protobuf types are; every test
// assembly compiles its own copy and sees those types through InternalsVisibleTo.
//
//   var bytes = TestModels.Model(opset: 13)
//       .Input("x", OnnxDataType.Float, "batch", 4)
//       .Initializer(TestTensors.Float("w", [4, 2], 1, 2, 3, 4, 5, 6, 7, 8))
//       .Node("MatMul", ["x", "w"], ["y"])
//       .Output("y", OnnxDataType.Float, "batch", 2)
//       .ToBytes();

/// <summary>Entry points: <see cref="Model"/> for a model, <see cref="Graph"/> for an If/Loop body.</summary>
internal static class TestModels
{
    /// <summary>A model builder; IR version 8 suits opsets up to 18, use 10 for opset 21, 11 for opset 23+.</summary>
    public static ModelBuilder Model(long opset = 13, long irVersion = 8) => new(opset, irVersion);

    /// <summary>A subgraph builder, for <see cref="Attr.Graph"/> (If branches, Loop bodies).</summary>
    public static GraphBuilder Graph(string name = "body") => new(name);

    /// <summary>
    /// y = Relu(x·W1 + b1)·W2 + b2 with x float[batch, inFeatures] and deterministic weights: a small model
    /// with initializers that ONNX Runtime runs.
    /// </summary>
    public static ModelBuilder Mlp(int inFeatures = 4, int hidden = 8, int outFeatures = 3, int seed = 1, long opset = 13) =>
        Model(opset)
            .Input("x", OnnxDataType.Float, "batch", inFeatures)
            .Initializer(TestTensors.Random("W1", [inFeatures, hidden], seed))
            .Initializer(TestTensors.Random("b1", [hidden], seed + 1))
            .Initializer(TestTensors.Random("W2", [hidden, outFeatures], seed + 2))
            .Initializer(TestTensors.Random("b2", [outFeatures], seed + 3))
            .Node("MatMul", ["x", "W1"], ["h0"], name: "fc1")
            .Node("Add", ["h0", "b1"], ["h1"], name: "fc1_bias")
            .Node("Relu", ["h1"], ["h2"], name: "relu")
            .Node("MatMul", ["h2", "W2"], ["y0"], name: "fc2")
            .Node("Add", ["y0", "b2"], ["y"], name: "fc2_bias")
            .Output("y", OnnxDataType.Float, "batch", outFeatures);
}

/// <summary>One dimension of a declared shape: a number, or a symbolic name such as "batch".</summary>
internal readonly record struct Dim(long? Value, string? Param)
{
    public static implicit operator Dim(long value) => new(value, null);
    public static implicit operator Dim(string param) => new(null, param);
}

/// <summary>Builds node attributes: <c>Attr.Int("axis", 1)</c>, <c>Attr.Graph("then_branch", g)</c>, ...</summary>
internal static class Attr
{
    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    public static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Floats(string name, params float[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Floats };
        a.Floats.AddRange(values);
        return a;
    }

    public static AttributeProto String(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    public static AttributeProto Tensor(string name, TensorProto value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Tensor, T = value };

    public static AttributeProto Graph(string name, GraphBuilder body) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Graph, G = body.BuildGraph() };

    public static AttributeProto Graph(string name, GraphProto body) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Graph, G = body };
}

/// <summary>The fluent part shared by models and subgraphs: inputs, outputs, initializers, nodes.</summary>
internal abstract class GraphBuilderBase<TSelf> where TSelf : GraphBuilderBase<TSelf>
{
    private readonly GraphProto graph;
    private readonly Dictionary<string, int> opCounts = new(StringComparer.Ordinal);
    private readonly string namePrefix;

    protected GraphBuilderBase(string name, bool isMain)
    {
        graph = new GraphProto { Name = name };
        namePrefix = isMain ? "" : name + "_"; // subgraph nodes get names distinct from the main graph's
    }

    private TSelf Self => (TSelf)this;

    /// <summary>A graph input with an element type and a shape; no dims means a scalar.</summary>
    public TSelf Input(string name, OnnxDataType type, params Dim[] shape)
    {
        graph.Input.Add(MakeValueInfo(name, type, shape));
        return Self;
    }

    /// <summary>A graph input whose rank is unknown (no shape at all).</summary>
    public TSelf InputUnranked(string name, OnnxDataType type)
    {
        graph.Input.Add(MakeValueInfo(name, type, null));
        return Self;
    }

    /// <summary>A graph output with an element type and a shape; no dims means a scalar.</summary>
    public TSelf Output(string name, OnnxDataType type, params Dim[] shape)
    {
        graph.Output.Add(MakeValueInfo(name, type, shape));
        return Self;
    }

    /// <summary>A graph output whose rank is unknown (no shape at all), as If branches often declare.</summary>
    public TSelf OutputUnranked(string name, OnnxDataType type)
    {
        graph.Output.Add(MakeValueInfo(name, type, null));
        return Self;
    }

    /// <summary>A value_info entry: the declared type of an intermediate value.</summary>
    public TSelf ValueInfo(string name, OnnxDataType type, params Dim[] shape)
    {
        graph.ValueInfo.Add(MakeValueInfo(name, type, shape));
        return Self;
    }

    /// <summary>An initializer (see <see cref="TestTensors"/>).</summary>
    public TSelf Initializer(TensorProto tensor)
    {
        graph.Initializer.Add(tensor);
        return Self;
    }

    /// <summary>A float initializer stored in raw_data.</summary>
    public TSelf Initializer(string name, long[] dims, params float[] values) =>
        Initializer(TestTensors.Float(name, dims, values));

    /// <summary>
    /// A node. Without a name it is named after its op type (<c>Add_0</c>, <c>Add_1</c>, ...; in a
    /// subgraph prefixed by the subgraph's name); pass name: "" for an unnamed node.
    /// </summary>
    public TSelf Node(string opType, string[] inputs, string[] outputs, params AttributeProto[] attributes) =>
        Node(opType, inputs, outputs, name: null, domain: "", attributes);

    /// <summary>A node with an explicit name and domain (e.g. <c>com.microsoft</c>).</summary>
    public TSelf Node(string opType, string[] inputs, string[] outputs, string? name, string domain = "", params AttributeProto[] attributes)
    {
        if (name is null)
        {
            int k = opCounts.GetValueOrDefault(opType);
            opCounts[opType] = k + 1;
            name = $"{namePrefix}{opType}_{k}";
        }
        var node = new NodeProto { OpType = opType, Name = name, Domain = domain };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        graph.Node.Add(node);
        return Self;
    }

    /// <summary>A Constant node holding a tensor (its <c>value</c> attribute).</summary>
    public TSelf Constant(string output, TensorProto value) =>
        Node("Constant", [], [output], Attr.Tensor("value", value));

    /// <summary>A Constant node with <c>value_float</c> (a float scalar).</summary>
    public TSelf ConstantFloat(string output, float value) => Node("Constant", [], [output], Attr.Float("value_float", value));

    /// <summary>A Constant node with <c>value_floats</c> (a 1-D float tensor).</summary>
    public TSelf ConstantFloats(string output, params float[] values) => Node("Constant", [], [output], Attr.Floats("value_floats", values));

    /// <summary>A Constant node with <c>value_int</c> (an int64 scalar).</summary>
    public TSelf ConstantInt(string output, long value) => Node("Constant", [], [output], Attr.Int("value_int", value));

    /// <summary>A Constant node with <c>value_ints</c> (a 1-D int64 tensor).</summary>
    public TSelf ConstantInts(string output, params long[] values) => Node("Constant", [], [output], Attr.Ints("value_ints", values));

    /// <summary>An If node whose branches are built by the callers (each must declare the same outputs).</summary>
    public TSelf If(string condition, string[] outputs, GraphBuilder thenBranch, GraphBuilder elseBranch, string? name = null) =>
        Node("If", [condition], outputs, name, "", Attr.Graph("then_branch", thenBranch), Attr.Graph("else_branch", elseBranch));

    /// <summary>Applies raw edits to the graph proto (for malformed graphs in negative tests).</summary>
    public TSelf Edit(Action<GraphProto> edit)
    {
        edit(graph);
        return Self;
    }

    /// <summary>The graph built so far (a copy: the builder can go on).</summary>
    public GraphProto BuildGraph() => graph.Clone();

    private static ValueInfoProto MakeValueInfo(string name, OnnxDataType type, Dim[]? shape)
    {
        var tensorType = new TypeProto.Types.Tensor { ElemType = (int)type };
        if (shape is not null)
        {
            tensorType.Shape = new TensorShapeProto();
            foreach (var d in shape)
                tensorType.Shape.Dim.Add(d.Param is not null
                    ? new TensorShapeProto.Types.Dimension { DimParam = d.Param }
                    : new TensorShapeProto.Types.Dimension { DimValue = d.Value ?? 0 });
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensorType } };
    }
}

/// <summary>Builds a subgraph (If branch, Loop or Scan body).</summary>
internal sealed class GraphBuilder(string name) : GraphBuilderBase<GraphBuilder>(name, isMain: false);

/// <summary>Builds a model: the main graph plus IR version, opsets and producer.</summary>
internal sealed class ModelBuilder : GraphBuilderBase<ModelBuilder>
{
    private readonly List<OperatorSetIdProto> opsets = [];
    private long irVersion;
    private bool initializersAsInputs;

    internal ModelBuilder(long opset, long irVersion) : base("main", isMain: true)
    {
        this.irVersion = irVersion;
        opsets.Add(new OperatorSetIdProto { Domain = "", Version = opset });
    }

    /// <summary>Sets the IR version.</summary>
    public ModelBuilder IrVersion(long version)
    {
        irVersion = version;
        return this;
    }

    /// <summary>Sets the opset of a domain ("" is ai.onnx; "com.microsoft" for ONNX Runtime's contrib ops).</summary>
    public ModelBuilder Opset(string domain, long version)
    {
        opsets.RemoveAll(o => o.Domain == domain);
        opsets.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        return this;
    }

    /// <summary>Lists every initializer among the graph inputs too, as IR 3 models (ResNet18's export) do.</summary>
    public ModelBuilder InitializersAsInputs()
    {
        initializersAsInputs = true;
        return this;
    }

    /// <summary>The model proto (a fresh copy on each call).</summary>
    public ModelProto Build()
    {
        var model = new ModelProto
        {
            IrVersion = irVersion,
            ProducerName = "MLNetCompress.Testing",
            ProducerVersion = "1",
            Graph = BuildGraph(),
        };
        model.OpsetImport.AddRange(opsets.Select(o => o.Clone()));
        if (initializersAsInputs)
        {
            foreach (var t in model.Graph.Initializer)
            {
                if (model.Graph.Input.Any(i => i.Name == t.Name)) continue;
                var tt = new TypeProto.Types.Tensor { ElemType = t.DataType, Shape = new TensorShapeProto() };
                foreach (long d in t.Dims) tt.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
                model.Graph.Input.Add(new ValueInfoProto { Name = t.Name, Type = new TypeProto { TensorType = tt } });
            }
        }
        return model;
    }

    /// <summary>The serialized model.</summary>
    public byte[] ToBytes() => Build().ToByteArray();

    /// <summary>The model loaded as a <see cref="ModelGraph"/> (through its bytes, as a file would be).</summary>
    public ModelGraph ToGraph() => ModelGraph.FromBytes(ToBytes());

    /// <summary>Writes the model to <paramref name="path"/> and returns the path.</summary>
    public string Save(string path)
    {
        File.WriteAllBytes(path, ToBytes());
        return path;
    }
}

/// <summary>
/// Tensors encoded by hand per onnx.proto: raw_data little-endian, or the typed fields
/// (float_data, int32_data, int64_data, double_data, uint64_data).
/// </summary>
internal static class TestTensors
{
    /// <summary>A float tensor in raw_data.</summary>
    public static TensorProto Float(string name, long[] dims, params float[] values)
    {
        var raw = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(i * 4), values[i]);
        return Raw(name, dims, OnnxDataType.Float, raw);
    }

    /// <summary>A float tensor in float_data.</summary>
    public static TensorProto FloatTyped(string name, long[] dims, params float[] values)
    {
        var t = Header(name, dims, OnnxDataType.Float);
        t.FloatData.AddRange(values);
        return t;
    }

    /// <summary>An int64 tensor in raw_data.</summary>
    public static TensorProto Int64(string name, long[] dims, params long[] values)
    {
        var raw = new byte[values.Length * 8];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt64LittleEndian(raw.AsSpan(i * 8), values[i]);
        return Raw(name, dims, OnnxDataType.Int64, raw);
    }

    /// <summary>An int32 tensor in raw_data.</summary>
    public static TensorProto Int32(string name, long[] dims, params int[] values)
    {
        var raw = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(raw.AsSpan(i * 4), values[i]);
        return Raw(name, dims, OnnxDataType.Int32, raw);
    }

    /// <summary>An int8 tensor in raw_data.</summary>
    public static TensorProto Int8(string name, long[] dims, params sbyte[] values) =>
        Raw(name, dims, OnnxDataType.Int8, values.Select(v => (byte)v).ToArray());

    /// <summary>A uint8 tensor in raw_data.</summary>
    public static TensorProto UInt8(string name, long[] dims, params byte[] values) => Raw(name, dims, OnnxDataType.UInt8, values);

    /// <summary>A bool scalar in raw_data (an If condition).</summary>
    public static TensorProto Bool(string name, bool value) => Raw(name, [], OnnxDataType.Bool, [value ? (byte)1 : (byte)0]);

    /// <summary>Any tensor from its raw_data bytes as they are (no size check: negative tests use that).</summary>
    public static TensorProto Raw(string name, long[] dims, OnnxDataType type, byte[] raw)
    {
        var t = Header(name, dims, type);
        t.RawData = ByteString.CopyFrom(raw);
        return t;
    }

    /// <summary>A tensor with name, type and shape and no payload yet; fill a typed field to finish it.</summary>
    public static TensorProto Header(string name, long[] dims, OnnxDataType type)
    {
        var t = new TensorProto { Name = name, DataType = (int)type };
        t.Dims.AddRange(dims);
        return t;
    }

    /// <summary>Deterministic floats in [-1, 1) from a seed.</summary>
    public static float[] RandomValues(int count, int seed)
    {
        var rng = new System.Random(seed);
        var v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
        return v;
    }

    /// <summary>A float tensor of deterministic values in [-1, 1).</summary>
    public static TensorProto Random(string name, long[] dims, int seed) =>
        Float(name, dims, RandomValues((int)dims.Aggregate(1L, (a, b) => a * b), seed));
}
