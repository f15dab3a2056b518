using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Onnx;

/// <summary>A graph input or output: name, element type and shape (null dims are symbolic or unknown).</summary>
public sealed record ValueSignature(string Name, OnnxDataType ElementType, IReadOnlyList<long?>? Shape, IReadOnlyList<string?>? SymbolicDims)
{
    internal static ValueSignature Of(ValueInfoProto v)
    {
        var tt = v.Type?.TensorType;
        if (tt is null) return new ValueSignature(v.Name, OnnxDataType.Undefined, null, null);
        var dims = tt.Shape?.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue : (long?)null).ToList();
        var syms = tt.Shape?.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam ? d.DimParam : null).ToList();
        return new ValueSignature(v.Name, OnnxDataTypes.FromWire(tt.ElemType), dims, syms);
    }

    /// <summary>Like <c>float[batch,3,224,224]</c>.</summary>
    public override string ToString()
    {
        if (Shape is null) return $"{OnnxDataTypes.Name(ElementType)}[?]";
        var parts = Shape.Select((d, k) => d?.ToString() ?? SymbolicDims?[k] ?? "?");
        return $"{OnnxDataTypes.Name(ElementType)}[{string.Join(",", parts)}]";
    }

    /// <summary>Same name, type and shape.</summary>
    public bool SameAs(ValueSignature other) =>
        Name == other.Name && ElementType == other.ElementType &&
        (Shape is null) == (other.Shape is null) && (Shape is null || Shape.SequenceEqual(other.Shape!));
}

/// <summary>A model's real inputs (initializers excluded, as IR 3 lists them) and outputs.</summary>
public sealed record GraphSignature(IReadOnlyList<ValueSignature> Inputs, IReadOnlyList<ValueSignature> Outputs)
{
    internal static GraphSignature Of(GraphScope main) =>
        new(main.RealInputs.Select(ValueSignature.Of).ToList(), main.Proto.Output.Select(ValueSignature.Of).ToList());
}
