using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Onnx;

/// <summary>Where a constant tensor is stored in the model.</summary>
public enum ConstantKind
{
    /// <summary>A graph initializer.</summary>
    Initializer,
    /// <summary>The output of a <c>Constant</c> node.</summary>
    ConstantNode,
}

/// <summary>
/// One constant tensor of the model seen the same way wherever it lives: an initializer, a
/// <c>Constant</c> node, in the main graph or inside a subgraph (If/Loop/Scan).
/// </summary>
public sealed class ConstantTensor
{
    internal ConstantTensor(string name, ConstantKind kind, GraphScope scope, TensorProto tensor, NodeProto? node)
    {
        Name = name; Kind = kind; Scope = scope; Tensor = tensor; Node = node;
    }

    /// <summary>The value name nodes read it by.</summary>
    public string Name { get; }

    /// <summary>Initializer or Constant node.</summary>
    public ConstantKind Kind { get; }

    /// <summary>The graph it belongs to.</summary>
    public GraphScope Scope { get; }

    /// <summary>True when it sits inside an If/Loop/Scan body rather than the main graph.</summary>
    public bool InSubgraph => Scope.Parent is not null;

    /// <summary>The external data file it was read from, or null when it was stored inline.</summary>
    public string? ExternalLocation => ExternalData.OriginOf(Tensor);

    internal TensorProto Tensor { get; }

    internal NodeProto? Node { get; }

    /// <summary>Element type.</summary>
    public OnnxDataType DataType => OnnxDataTypes.FromWire(Tensor.DataType);

    /// <summary>Shape.</summary>
    public long[] Dims => Tensor.Dims.ToArray();

    /// <summary>Number of elements.</summary>
    public long ElementCount => TensorData.ElementCount(Tensor.Dims.ToArray(), Name);

    /// <summary>Bytes of payload (packed for sub-byte types).</summary>
    public long ByteCount => OnnxDataTypes.ByteCount(DataType, ElementCount);

    /// <summary>The values as float32.</summary>
    public float[] ToFloats() => TensorData.ToFloatArray(Tensor);
}
