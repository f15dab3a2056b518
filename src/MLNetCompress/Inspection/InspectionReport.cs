using System.Text.Json;
using System.Text.Json.Serialization;

namespace MLNetCompress.Inspection;

/// <summary>
/// What <see cref="ModelInspector"/> found in a model: header facts, signature, operators, where the
/// weights live and how big they are, a per-layer weight table and notes. Serialises to and from JSON
/// with <see cref="JsonOptions"/> (camelCase, enums as strings).
/// </summary>
public sealed record InspectionReport
{
    /// <summary>The model file inspected, or null when the model was inspected in memory.</summary>
    public string? Path { get; init; }

    /// <summary>Bytes of the .onnx file alone, or null for a model inspected in memory.</summary>
    public long? FileBytes { get; init; }

    /// <summary>Bytes on disk: the .onnx file plus every external data file it names; null in memory.</summary>
    public long? SizeOnDisk { get; init; }

    /// <summary>The ONNX IR version.</summary>
    public required long IrVersion { get; init; }

    /// <summary>The opset imported for each domain; ai.onnx is written as "ai.onnx".</summary>
    public required IReadOnlyList<OpsetEntry> Opsets { get; init; }

    /// <summary>Producer name and version, e.g. "pytorch 1.13.1"; empty when the model names none.</summary>
    public required string Producer { get; init; }

    /// <summary>The model's real inputs (IR 3 initializers that are also listed as inputs are left out).</summary>
    public required IReadOnlyList<TensorSignature> Inputs { get; init; }

    /// <summary>The model's outputs.</summary>
    public required IReadOnlyList<TensorSignature> Outputs { get; init; }

    /// <summary>Nodes of the main graph.</summary>
    public required int MainGraphNodes { get; init; }

    /// <summary>Nodes of every graph, subgraphs (If/Loop/Scan bodies) included.</summary>
    public required int TotalNodes { get; init; }

    /// <summary>Number of subgraphs.</summary>
    public required int Subgraphs { get; init; }

    /// <summary>How often each operator occurs over all graphs, most frequent first.</summary>
    public required IReadOnlyList<OpCount> Operators { get; init; }

    /// <summary>Constant tensors (weights, biases, shape constants) per element type.</summary>
    public required ParameterSummary Parameters { get; init; }

    /// <summary>Where the constant tensors are stored.</summary>
    public required WeightLocations WeightLocations { get; init; }

    /// <summary>One row per Conv / ConvTranspose / Gemm / MatMul (and their integer forms) with a constant weight.</summary>
    public required IReadOnlyList<LayerInfo> Layers { get; init; }

    /// <summary>Things worth knowing: reordering, existing quantization, IR 3 inputs, float16 weights, ...</summary>
    public required IReadOnlyList<string> Notes { get; init; }

    /// <summary>The options the report is written and read with: camelCase, indented, enums as strings.</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    /// <summary>The report as indented camelCase JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Reads a report written by <see cref="ToJson"/>.</summary>
    public static InspectionReport FromJson(string json) =>
        JsonSerializer.Deserialize<InspectionReport>(json, JsonOptions)
        ?? throw new JsonException("the JSON text holds null, not an inspection report.");
}

/// <summary>One imported opset.</summary>
/// <param name="Domain">The operator domain: "ai.onnx", "com.microsoft", "ai.onnx.ml", ...</param>
/// <param name="Version">The opset version.</param>
public sealed record OpsetEntry(string Domain, long Version);

/// <summary>A graph input or output.</summary>
/// <param name="Name">The value name.</param>
/// <param name="ElementType">Element type as ONNX names it ("float", "int64", ...); "undefined" for a non-tensor value.</param>
/// <param name="Shape">One entry per dimension: a number, a symbolic name such as "batch", or "?" when unknown;
/// null when the model states no shape.</param>
public sealed record TensorSignature(string Name, string ElementType, IReadOnlyList<string>? Shape)
{
    /// <summary>Type and shape together, e.g. <c>float[batch,3,224,224]</c>.</summary>
    [JsonIgnore]
    public string TypeText => Shape is null ? $"{ElementType}[?]" : $"{ElementType}[{string.Join(",", Shape)}]";
}

/// <summary>How many nodes run one operator.</summary>
/// <param name="Op">Operator as shown: the op type for ai.onnx, "domain.OpType" otherwise (e.g. "com.microsoft.QLinearAdd").</param>
/// <param name="Domain">The operator's domain; "ai.onnx" for the default domain.</param>
/// <param name="OpType">The op type alone.</param>
/// <param name="Count">Nodes of this operator over all graphs.</param>
public sealed record OpCount(string Op, string Domain, string OpType, int Count);

/// <summary>A group of constant tensors.</summary>
/// <param name="Tensors">How many tensors.</param>
/// <param name="Parameters">Their elements, summed.</param>
/// <param name="Bytes">Their payload bytes (sub-byte types packed), summed.</param>
public sealed record TensorGroup(int Tensors, long Parameters, long Bytes)
{
    /// <summary>An empty group.</summary>
    public static TensorGroup Empty { get; } = new(0, 0, 0);

    /// <summary>This group with one more tensor.</summary>
    public TensorGroup Add(long parameters, long bytes) => new(Tensors + 1, Parameters + parameters, Bytes + bytes);
}

/// <summary>Constants of one element type.</summary>
/// <param name="DataType">Element type as ONNX names it.</param>
/// <param name="Tensors">How many constant tensors have this type.</param>
/// <param name="Parameters">Their elements, summed.</param>
/// <param name="Bytes">Their payload bytes, summed.</param>
public sealed record DataTypeStats(string DataType, int Tensors, long Parameters, long Bytes);

/// <summary>Every constant tensor of the model, in total and per element type.</summary>
/// <param name="Total">Elements of all dense constants plus the stored values of sparse initializers.</param>
/// <param name="Bytes">Payload bytes of the same tensors (sparse: values plus indices).</param>
/// <param name="ByDataType">Dense constants grouped by element type, largest first.</param>
public sealed record ParameterSummary(long Total, long Bytes, IReadOnlyList<DataTypeStats> ByDataType);

/// <summary>
/// Where the constants are stored. <see cref="Initializers"/>, <see cref="ConstantNodes"/> and
/// <see cref="InSubgraphs"/> split the dense constants between them; <see cref="ExternalData"/> counts those
/// of them read from external data files; <see cref="SparseInitializers"/> counts sparse tensors apart.
/// </summary>
/// <param name="Initializers">Initializers of the main graph.</param>
/// <param name="ConstantNodes">Outputs of Constant nodes of the main graph.</param>
/// <param name="InSubgraphs">Initializers and Constant nodes inside If/Loop/Scan bodies.</param>
/// <param name="ExternalData">Constants whose payload was read from an external data file.</param>
/// <param name="SparseInitializers">Sparse initializers and sparse Constant values (parameters are stored values).</param>
/// <param name="ExternalFiles">The external data files the model reads, relative to its folder.</param>
public sealed record WeightLocations(
    TensorGroup Initializers,
    TensorGroup ConstantNodes,
    TensorGroup InSubgraphs,
    TensorGroup ExternalData,
    TensorGroup SparseInitializers,
    IReadOnlyList<string> ExternalFiles);

/// <summary>One layer with a constant weight.</summary>
/// <param name="Node">The node's name (or "OpType(outputs)" when it has none).</param>
/// <param name="Op">The operator, domain-qualified outside ai.onnx.</param>
/// <param name="Graph">The graph the node sits in: "main" or a subgraph path.</param>
/// <param name="Weight">The name of the constant tensor that holds the weight.</param>
/// <param name="Via">Ops between the constant and the layer, nearest the layer first (e.g. ["Mul","Cast"] for int8
/// storage); empty when the layer reads the constant directly.</param>
/// <param name="Shape">Shape of the stored constant.</param>
/// <param name="Parameters">Elements of the stored constant.</param>
/// <param name="Bytes">Payload bytes of the stored constant.</param>
/// <param name="StorageType">Element type the weight is stored in ("float", "int8", ...).</param>
/// <param name="Sparsity">Fraction of weights that are exactly zero (for quantized storage: equal to the zero point or
/// a zero codebook entry); null when it cannot be told from the stored data.</param>
public sealed record LayerInfo(
    string Node,
    string Op,
    string Graph,
    string Weight,
    IReadOnlyList<string> Via,
    IReadOnlyList<long> Shape,
    long Parameters,
    long Bytes,
    string StorageType,
    double? Sparsity);
