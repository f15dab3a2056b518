namespace MLNetCompress.Packing;

/// <summary>A tensor payload cut out of the serialized model: where it was, how long, and how its bytes are coded.</summary>
/// <param name="Offset">Byte offset in the original file.</param>
/// <param name="Length">Payload length in bytes.</param>
/// <param name="ElementSize">Bytes per element (1, 2, 4 or 8): the payload goes to that stream, shuffled by byte plane.</param>
/// <param name="Delta">Integers stored as differences of consecutive values before the shuffle (sorted sparse indices become small).</param>
internal readonly record struct PayloadRange(long Offset, long Length, int ElementSize, bool Delta);

/// <summary>
/// Finds the tensor payloads of a serialized ONNX model by walking the protobuf wire format (no re-serialization, so
/// the bytes around them are kept exactly): raw_data, packed float_data and double_data of every TensorProto among
/// initializers, sparse initializers, Constant and other attribute tensors, in the main graph and every subgraph.
/// </summary>
internal static class OnnxStreamSplitter
{
    // Field numbers of onnx.proto3 on the way to tensors.
    private const int ModelGraph = 7;
    private const int GraphNode = 1, GraphInitializer = 5, GraphSparseInitializer = 15;
    private const int NodeAttribute = 5;
    private const int AttrTensor = 5, AttrGraph = 6, AttrTensors = 10, AttrGraphs = 11, AttrSparseTensor = 22, AttrSparseTensors = 23;
    private const int SparseValues = 1, SparseIndices = 2;
    private const int TensorDataType = 2, TensorFloatData = 4, TensorRawData = 9, TensorDoubleData = 10;

    private enum Kind { Model, Graph, Node, Attribute, Sparse, Tensor }

    /// <summary>The payload ranges in file order; empty when the bytes are not a well-formed model (then the whole file is the skeleton).</summary>
    public static List<PayloadRange> Find(ReadOnlySpan<byte> model)
    {
        var ranges = new List<PayloadRange>();
        try
        {
            Walk(model, 0, Kind.Model, ranges, 0);
        }
        catch (FormatException)
        {
            return [];
        }
        ranges.Sort((a, b) => a.Offset.CompareTo(b.Offset));
        // Overlaps cannot come from a well-formed model; a file that produces them is kept whole.
        for (int i = 1; i < ranges.Count; i++)
            if (ranges[i].Offset < ranges[i - 1].Offset + ranges[i - 1].Length) return [];
        return ranges;
    }

    private static void Walk(ReadOnlySpan<byte> data, long baseOffset, Kind kind, List<PayloadRange> ranges, int depth)
    {
        if (depth > 64) throw new FormatException("nesting too deep");
        int tensorType = 0;
        var tensorFields = kind == Kind.Tensor ? new List<(int Field, long Offset, int Length)>() : null;
        int at = 0;
        while (at < data.Length)
        {
            ulong tag = ReadVarint(data, ref at);
            int field = (int)(tag >> 3);
            int wire = (int)(tag & 7);
            switch (wire)
            {
                case 0:
                    ulong v = ReadVarint(data, ref at);
                    if (kind == Kind.Tensor && field == TensorDataType) tensorType = (int)v;
                    break;
                case 1: Skip(data, ref at, 8); break;
                case 5: Skip(data, ref at, 4); break;
                case 2:
                    ulong len = ReadVarint(data, ref at);
                    if (len > (ulong)(data.Length - at)) throw new FormatException("length past the end");
                    var body = data.Slice(at, (int)len);
                    long offset = baseOffset + at;
                    if (Child(kind, field) is Kind child) Walk(body, offset, child, ranges, depth + 1);
                    else tensorFields?.Add((field, offset, (int)len));
                    at += (int)len;
                    break;
                default: throw new FormatException($"wire type {wire}");
            }
        }
        if (tensorFields is null) return;
        foreach (var (field, offset, length) in tensorFields)
        {
            if (length == 0) continue;
            switch (field)
            {
                case TensorRawData:
                    int size = ElementSize(tensorType);
                    if (length % size != 0) size = 1;
                    ranges.Add(new PayloadRange(offset, length, size, IsInteger(tensorType) && size > 1));
                    break;
                case TensorFloatData when length % 4 == 0:
                    ranges.Add(new PayloadRange(offset, length, 4, false));
                    break;
                case TensorDoubleData when length % 8 == 0:
                    ranges.Add(new PayloadRange(offset, length, 8, false));
                    break;
            }
        }
    }

    private static Kind? Child(Kind parent, int field) => (parent, field) switch
    {
        (Kind.Model, ModelGraph) => Kind.Graph,
        (Kind.Graph, GraphNode) => Kind.Node,
        (Kind.Graph, GraphInitializer) => Kind.Tensor,
        (Kind.Graph, GraphSparseInitializer) => Kind.Sparse,
        (Kind.Node, NodeAttribute) => Kind.Attribute,
        (Kind.Attribute, AttrTensor or AttrTensors) => Kind.Tensor,
        (Kind.Attribute, AttrGraph or AttrGraphs) => Kind.Graph,
        (Kind.Attribute, AttrSparseTensor or AttrSparseTensors) => Kind.Sparse,
        (Kind.Sparse, SparseValues or SparseIndices) => Kind.Tensor,
        _ => null,
    };

    /// <summary>Bytes per element of an ONNX TensorProto.DataType (1 for types without a fixed width).</summary>
    internal static int ElementSize(int dataType) => dataType switch
    {
        1 or 6 or 12 => 4,       // float, int32, uint32
        4 or 5 or 10 or 16 => 2, // uint16, int16, float16, bfloat16
        7 or 11 or 13 or 14 => 8, // int64, double, uint64, complex64
        15 => 8,                 // complex128: two doubles
        _ => 1,
    };

    private static bool IsInteger(int dataType) => dataType is 4 or 5 or 6 or 7 or 12 or 13;

    private static ulong ReadVarint(ReadOnlySpan<byte> data, ref int at)
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (at >= data.Length) throw new FormatException("truncated varint");
            byte b = data[at++];
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return result;
        }
        throw new FormatException("varint too long");
    }

    private static void Skip(ReadOnlySpan<byte> data, ref int at, int count)
    {
        if (data.Length - at < count) throw new FormatException("truncated field");
        at += count;
    }
}
