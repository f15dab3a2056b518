using Google.Protobuf;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Pruning;

/// <summary>
/// The bitmask form of a mostly-zero tensor: one bit per element saying whether it is non-zero (packed eight per byte,
/// element i at bit i mod 8 of byte i / 8) and the non-zero elements in order, after one leading zero element. A uint8
/// tensor whose non-zeros are all below 16 (a clustered weight's indices) keeps them as 4-bit values, two per byte,
/// the first in the low nibble.
/// </summary>
/// <param name="Dims">The tensor's shape.</param>
/// <param name="DataType">The element type of the tensor (and of the payload, unless <paramref name="Nibbles"/>).</param>
/// <param name="Mask">⌈n / 8⌉ bytes; padding bits of the last byte are zero.</param>
/// <param name="Payload">The zero element, then the non-zero elements: raw little-endian bytes, or 4-bit values when <paramref name="Nibbles"/>.</param>
/// <param name="NonZeros">Elements whose bytes are not all zero (−0.0 counts: the tensor comes back bit for bit).</param>
/// <param name="Nibbles">True when the payload holds 4-bit values.</param>
internal sealed record BitmaskTensor(long[] Dims, OnnxDataType DataType, byte[] Mask, byte[] Payload, long NonZeros, bool Nibbles)
{
    /// <summary>Elements of the tensor.</summary>
    public long Count => TensorData.ElementCount(Dims);

    /// <summary>Bytes of mask and payload together.</summary>
    public long PayloadBytes => Mask.LongLength + Payload.LongLength;
}

/// <summary>
/// Encodes mostly-zero tensors as a <see cref="BitmaskTensor"/> and writes the ONNX nodes that compute them back from
/// constants only, so ONNX Runtime folds them into the dense initializer when a session is created:
/// <code>
/// bits   = BitShift(BitShift(mask [m,1], [7..0], LEFT), 7, RIGHT)  → Cast(int32) → Reshape [8m] → [Slice [0, n)]
/// where  = CumSum(bits) · bits                                     (i-th non-zero → i, zero → 0)
/// values = payload                                                 (or its nibbles: BitShift(BitShift(p [q,1], [4,0], LEFT), 4, RIGHT) → Reshape [2q])
/// tensor = Reshape(Gather(values, where), shape)
/// </code>
/// BitShift and CumSum need opset 11; lower opsets cannot hold the expansion (<see cref="MinOpset"/>).
/// </summary>
internal static class BitmaskEncoding
{
    /// <summary>The lowest ai.onnx opset with the ops of the expansion (BitShift, CumSum).</summary>
    public const long MinOpset = 11;

    /// <summary>Encodes a tensor's canonical raw bytes (<paramref name="type"/> must take whole bytes per element).</summary>
    public static BitmaskTensor Encode(ReadOnlySpan<byte> raw, OnnxDataType type, long[] dims)
    {
        int bits = OnnxDataTypes.BitsPerElement(type);
        if (bits < 8 || bits % 8 != 0) throw new ArgumentException($"{OnnxDataTypes.Name(type)} elements are not whole bytes.", nameof(type));
        int size = bits / 8;
        long count = TensorData.ElementCount(dims);
        if (raw.Length != count * size) throw new ArgumentException($"{raw.Length} bytes for {count} {OnnxDataTypes.Name(type)} elements.", nameof(raw));

        var mask = new byte[(count + 7) / 8];
        long nonZeros = 0;
        bool small = type == OnnxDataType.UInt8;
        for (int i = 0; i < count; i++)
        {
            var element = raw.Slice(i * size, size);
            if (!element.ContainsAnyExcept((byte)0)) continue;
            mask[i >> 3] |= (byte)(1 << (i & 7));
            nonZeros++;
            if (small && element[0] >= 16) small = false;
        }

        // The zero element first: a position of 0 (a zero bit) gathers it.
        long values = nonZeros + 1;
        var payload = small ? new byte[(values + 1) / 2] : new byte[values * size];
        long at = 1;
        for (int i = 0; i < count; i++)
        {
            if ((mask[i >> 3] & (1 << (i & 7))) == 0) continue;
            if (small) payload[at >> 1] |= (byte)(raw[i] << (int)((at & 1) * 4));
            else raw.Slice(i * size, size).CopyTo(payload.AsSpan((int)(at * size)));
            at++;
        }
        return new BitmaskTensor(dims, type, mask, payload, nonZeros, small);
    }
}

/// <summary>
/// Writes <see cref="BitmaskTensor"/> expansions into one model. The small constants every expansion reads (shift
/// amounts, the CumSum axis, the flat shape) are main-graph initializers shared by all of them.
/// </summary>
internal sealed class BitmaskExpansion(ModelGraph graph)
{
    private readonly Dictionary<string, string> shared = new(StringComparer.Ordinal);

    // A mask this long may itself be stored as a bitmask (a second level) when that is smaller.
    private const long MinNestedMaskBytes = 256;

    /// <summary>The initializers and nodes of one expansion, not yet in the graph.</summary>
    public sealed class Planned
    {
        internal Planned(Dictionary<string, string> newShared) => NewShared = newShared;

        // Shared constants this plan creates (key → name); the model holds them once it is applied.
        internal Dictionary<string, string> NewShared { get; }

        /// <summary>New initializers (shared constants the model does not hold yet included).</summary>
        public List<TensorProto> Initializers { get; } = [];

        /// <summary>The nodes, in order; the last produces the tensor.</summary>
        public List<NodeProto> Nodes { get; } = [];

        /// <summary>True when the mask is itself stored as a bitmask.</summary>
        public bool NestedMask { get; internal set; }

        /// <summary>Payload bytes of the tensors it stores (masks and values; not the shared constants, shapes and nodes).</summary>
        public long PayloadBytes => Initializers.Where(t => Payloads.Contains(t.Name)).Sum(t => (long)t.RawData.Length);

        // Names of the mask and value tensors, at every level.
        internal HashSet<string> Payloads { get; } = new(StringComparer.Ordinal);

        /// <summary>What the expansion adds to the serialized model, in bytes.</summary>
        public long SerializedBytes => Initializers.Sum(t => (long)t.CalculateSize() + 2) + Nodes.Sum(n => (long)n.CalculateSize() + 3);
    }

    /// <summary>
    /// Builds the expansion that computes <paramref name="t"/> under <paramref name="output"/>. A mask that is mostly
    /// zero bytes (a tensor with well over 90% zeros) is stored as a bitmask in turn when that is smaller.
    /// </summary>
    public Planned Plan(BitmaskTensor t, string output)
    {
        var planned = new Planned(new Dictionary<string, string>(StringComparer.Ordinal));
        PlanInto(t, output, planned);
        return planned;
    }

    private void PlanInto(BitmaskTensor t, string output, Planned p)
    {
        // The nodes are unnamed and their values take a short stem: ONNX Runtime folds them away at load, and the
        // tensor's name on each of them would cost more bytes than a small layer's indices.
        string stem = graph.UniqueName("bm");
        string Shared(string key, Func<string, TensorProto> make)
        {
            if (shared.TryGetValue(key, out var existing) || p.NewShared.TryGetValue(key, out existing)) return existing;
            var tensor = make(graph.UniqueName("bitmask_" + key));
            p.Initializers.Add(tensor);
            p.NewShared[key] = tensor.Name;
            return tensor.Name;
        }
        string Const(string prefix, Func<string, TensorProto> make)
        {
            var tensor = make(graph.UniqueName(prefix));
            p.Initializers.Add(tensor);
            return tensor.Name;
        }
        string Node(string op, string suffix, string[] inputs, params AttributeProto[] attributes)
        {
            string value = graph.UniqueName(stem + suffix);
            var node = new NodeProto { OpType = op };
            node.Input.AddRange(inputs);
            node.Output.Add(value);
            node.Attribute.AddRange(attributes);
            p.Nodes.Add(node);
            return value;
        }
        string ShiftLeft(string key, byte[] amounts) => Shared(key, n => TensorData.FromUInt8(n, [amounts.Length], amounts));
        string Scalar(byte v) => Shared($"u8_{v}", n => TensorData.FromUInt8(n, [], [v]));
        string flat = Shared("flat", n => TensorData.FromInt64(n, [1], [-1L]));

        long count = t.Count, m = t.Mask.LongLength;
        string mask = Mask(t.Mask, output + "_bitmask", p);
        string bits = Node("BitShift", "_up", [mask, ShiftLeft("bit_shifts", [7, 6, 5, 4, 3, 2, 1, 0])], Direction("LEFT"));
        bits = Node("BitShift", "_bits", [bits, Scalar(7)], Direction("RIGHT"));
        bits = Node("Cast", "_int", [bits], Int("to", (long)OnnxDataType.Int32));
        bits = Node("Reshape", "_flat", [bits, flat]);
        if (count != 8 * m)
        {
            // The last mask byte's padding bits.
            string zero = Shared("start", n => TensorData.FromInt64(n, [1], [0L]));
            string end = Const(stem + "_end", n => TensorData.FromInt64(n, [1], [count]));
            bits = Node("Slice", "_trim", [bits, zero, end]);
        }
        string axis = Shared("axis", n => TensorData.FromInt32(n, [], [0]));
        string rank = Node("CumSum", "_rank", [bits, axis]);
        string where = Node("Mul", "_where", [rank, bits]);

        string values;
        if (t.Nibbles)
        {
            long q = t.Payload.LongLength;
            string packed = Const(output + "_nonzero_nibbles", n => TensorData.FromUInt8(n, [q, 1], t.Payload));
            p.Payloads.Add(packed);
            values = Node("BitShift", "_nz_up", [packed, ShiftLeft("nibble_shifts", [4, 0])], Direction("LEFT"));
            values = Node("BitShift", "_nz_split", [values, Scalar(4)], Direction("RIGHT"));
            values = Node("Reshape", "_nz_flat", [values, flat]);
        }
        else
        {
            values = Const(output + "_nonzero", n => TensorData.FromRaw(n, [t.NonZeros + 1], t.DataType, t.Payload));
            p.Payloads.Add(values);
        }
        string dense = Node("Gather", "_gather", [values, where]);
        string shape = Const(stem + "_shape", n => TensorData.FromInt64(n, [t.Dims.Length], t.Dims));
        p.Nodes.Add(new NodeProto { OpType = "Reshape", Input = { dense, shape }, Output = { output } });
    }

    /// <summary>The mask as a [m, 1] uint8 initializer, or computed by a bitmask of its own when that is smaller.</summary>
    private string Mask(byte[] bytes, string prefix, Planned p)
    {
        var plain = TensorData.FromUInt8(graph.UniqueName(prefix), [bytes.LongLength, 1], bytes);
        if (bytes.LongLength >= MinNestedMaskBytes)
        {
            var inner = new Planned(new Dictionary<string, string>(p.NewShared, StringComparer.Ordinal));
            PlanInto(BitmaskEncoding.Encode(bytes, OnnxDataType.UInt8, [bytes.LongLength, 1]), plain.Name, inner);
            if (inner.SerializedBytes < plain.CalculateSize() + 2)
            {
                // Its nodes come first: the mask they compute is read by this expansion's first BitShift.
                p.Initializers.AddRange(inner.Initializers);
                p.Nodes.AddRange(inner.Nodes);
                p.Payloads.UnionWith(inner.Payloads);
                foreach (var (key, name) in inner.NewShared) p.NewShared[key] = name;
                p.NestedMask = true;
                return plain.Name;
            }
        }
        p.Initializers.Add(plain);
        p.Payloads.Add(plain.Name);
        return plain.Name;
    }

    /// <summary>Adds a planned expansion's initializers to the main graph and its nodes before <paramref name="anchor"/>.</summary>
    public void Apply(Planned planned, NodeProto anchor)
    {
        var scope = graph.Main;
        foreach (var t in planned.Initializers) scope.AddInitializer(t);
        foreach (var (key, name) in planned.NewShared) shared[key] = name;
        foreach (var n in planned.Nodes) scope.InsertBefore(n, anchor);
    }

    private static AttributeProto Direction(string value) =>
        new() { Name = "direction", Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    private static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };
}
