using System.Runtime.InteropServices;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization.Storage;

/// <summary>
/// Writes a <see cref="PlannedStorage"/> into the graph: the stored bytes and scales replace the weight, and
/// nodes inserted before its first reader compute it back under its own name. Every input of those nodes is
/// a constant, so ONNX Runtime folds them into a float initializer when the session is created:
/// <code>
/// decode:  Cast(int8|int4|uint8|uint4 → float)           [C, blocks, B]
///      or  Cast(uint8 → int32) → Gather(table) → Reshape  [C, blocks, B]
/// scale:   Mul(scales [C, blocks, 1])
/// offset:  Add(offsets [C, blocks, 1])                      (uint8, uint4: −zp · scale)
/// layout:  [Reshape → Slice (drop padding)] → [Reshape → Transpose (channel axis not first)] → Reshape(shape)
/// </code>
/// followed by a Cast back for float16/bfloat16/double weights.
/// </summary>
internal sealed class WeightExpansion(ModelGraph graph)
{
    // One table per format, shared by every weight of the model (main graph, visible in every subgraph).
    private readonly Dictionary<StorageFormat, string> tables = [];

    /// <summary>Replaces the weight's storage and inserts its expansion.</summary>
    public void Write(PlannedStorage w)
    {
        var source = w.Source;
        var scope = source.Scope;
        var anchor = GraphEdits.FirstConsumer(scope, w.Name);
        var layout = w.Layout;
        string baseName = w.Name;

        // The stored tensors are kept the way the weight was: initializers, or Constant nodes in place.
        if (source.Kind == ConstantKind.Initializer) scope.RemoveInitializer(w.Name);
        else scope.RemoveNode(source.Node!);

        string Constant(TensorProto t)
        {
            if (source.Kind == ConstantKind.Initializer) scope.AddInitializer(t);
            else scope.InsertBefore(GraphEdits.Node(graph, "Constant", t.Name + "_constant", [], [t.Name], TensorAttribute(t)), anchor);
            return t.Name;
        }
        string Node(string op, string step, string[] inputs, string? output = null, params AttributeProto[] attributes)
        {
            output ??= graph.UniqueName($"{baseName}_{step}");
            scope.InsertBefore(GraphEdits.Node(graph, op, $"{baseName}_{step}", inputs, [output], attributes), anchor);
            return output;
        }
        string Shape(string step, params long[] dims) => Constant(TensorData.FromInt64(graph.UniqueName($"{baseName}_{step}_shape"), [dims.Length], dims));
        string Reshape(string input, string step, long[] dims, string? output = null) => Node("Reshape", step, [input, Shape(step, dims)], output);
        // Keeps the first `length` values of axis 1 (drops the padding): Slice's inputs from opset 10, its attributes before.
        string Slice(string input, long length)
        {
            if (graph.OnnxOpset >= 10)
            {
                string Ints(string what, long value) => Constant(TensorData.FromInt64(graph.UniqueName($"{baseName}_slice_{what}"), [1], [value]));
                return Node("Slice", "slice", [input, Ints("starts", 0), Ints("ends", length), Ints("axes", 1)]);
            }
            return Node("Slice", "slice", [input], null, IntsAttribute("starts", 0), IntsAttribute("ends", length), IntsAttribute("axes", 1));
        }

        long[] stored = [layout.Channels, layout.Blocks, layout.BlockSize];
        string format = w.Format.Name();
        string decoded = w.Expansion switch
        {
            StorageExpansion.CastInt8 => Node("Cast", "decode",
                [Constant(TensorData.FromInt8(graph.UniqueName($"{baseName}_{format}"), stored, w.Codes))], null, CastTo(OnnxDataType.Float)),
            StorageExpansion.CastInt4 => Node("Cast", "decode",
                [Constant(TensorData.FromInt4(graph.UniqueName($"{baseName}_{format}"), stored, w.Codes))], null, CastTo(OnnxDataType.Float)),
            // uint8/uint4 codes sit in the sbyte slots as their byte's bits.
            StorageExpansion.CastUInt8 => Node("Cast", "decode",
                [Constant(TensorData.FromUInt8(graph.UniqueName($"{baseName}_{format}"), stored, MemoryMarshal.AsBytes(w.Codes.AsSpan())))], null, CastTo(OnnxDataType.Float)),
            StorageExpansion.CastUInt4 => Node("Cast", "decode",
                [Constant(TensorData.FromUInt4(graph.UniqueName($"{baseName}_{format}"), stored, MemoryMarshal.AsBytes(w.Codes.AsSpan())))], null, CastTo(OnnxDataType.Float)),
            _ => Reshape(Node("Gather", "unpack", [Table(w.Format), Node("Cast", "bytes", [Constant(Packed(w, graph.UniqueName($"{baseName}_{format}_packed")))],
                null, CastTo(OnnxDataType.Int32))]), "values", stored),
        };
        var scales = TensorData.FromFloats(graph.UniqueName($"{baseName}_scale"), [layout.Channels, layout.Blocks, 1], w.Scales);
        string current = Node("Mul", "scale", [decoded, Constant(scales)]);
        if (w.Offsets is { } offsets)
            current = Node("Add", "offset", [current, Constant(TensorData.FromFloats(graph.UniqueName($"{baseName}_offset"), [layout.Channels, layout.Blocks, 1], offsets))]);

        if (layout.Padded != layout.Reduction)
        {
            current = Reshape(current, "rows", [layout.Channels, layout.Padded]);
            current = Slice(current, layout.Reduction);
        }
        if (layout.Outer > 1)
        {
            // Storage keeps each channel's values together; the weight has the channel axis inside.
            current = Reshape(current, "split", [layout.Channels, layout.Outer, layout.Inner]);
            current = Node("Transpose", "transpose", [current], null, new AttributeProto
            {
                Name = "perm", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 1, 0, 2 },
            });
        }
        if (w.DataType == OnnxDataType.Float)
        {
            Reshape(current, "reshape", w.ShapeArray, w.Name);
        }
        else
        {
            // Scales multiply in float (ONNX Runtime has float kernels for every op here, so all of it folds),
            // then the result goes back to the weight's own type.
            string asFloat = Reshape(current, "reshape", w.ShapeArray);
            Node("Cast", "restore", [asFloat], w.Name, CastTo(w.DataType));
        }
    }

    /// <summary>The shared [256, values-per-byte] float table of a format, added to the main graph on first use.</summary>
    private string Table(StorageFormat format)
    {
        if (tables.TryGetValue(format, out var name)) return name;
        name = graph.UniqueName($"weight_storage_{format.Name()}_table");
        graph.Main.AddInitializer(TensorData.FromFloats(name, [256, format.ValuesPerByte()], BitPacking.LookupTable(format)));
        tables[format] = name;
        return name;
    }

    private static TensorProto Packed(PlannedStorage w, string name)
    {
        var bytes = new byte[BitPacking.PackedLength(w.Format, w.Codes.LongLength)];
        BitPacking.Pack(w.Format, w.Codes, bytes);
        return TensorData.FromUInt8(name, [bytes.LongLength], bytes);
    }

    private static AttributeProto TensorAttribute(TensorProto value) =>
        new() { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = value };

    private static AttributeProto IntsAttribute(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Ints, Ints = { value } };

    private static AttributeProto CastTo(OnnxDataType type) =>
        new() { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (long)type };
}
