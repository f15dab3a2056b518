using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.Storage;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Quantization.Storage;

/// <summary>
/// Reads a stored weight back from a rewritten graph and dequantizes it with the formulas written out here
/// (bit fields, sign extension, index arithmetic), independently of the pass's kernels and of ONNX Runtime.
/// </summary>
internal static class StorageReference
{
    /// <summary>The codes (in storage order), scales and offsets ([channels, blocks]; offsets for uint8/uint4 only) and how they were found.</summary>
    public sealed record Stored(int[] Codes, float[] Scales, int Channels, int Blocks, int Padded, OnnxDataType DataType, bool LookupTable, float[]? Offsets = null);

    /// <summary>Follows weight ← Reshape/Transpose/Slice/Cast… ← [Add(…, offset) ←] Mul(decoded, scale) back to the stored tensors.</summary>
    public static Stored Read(ModelGraph graph, string name, StorageFormat format)
    {
        var scope = graph.Scopes.First(s => s.Producer(name) is not null);
        var node = scope.Producer(name)!;
        float[]? offsets = null;
        while (node.OpType != "Mul")
        {
            if (node.OpType == "Add") offsets = TensorData.ToFloatArray(Constant(scope, node.Input[1]));
            node = scope.Producer(node.Input[0]) ?? throw new Xunit.Sdk.XunitException($"no Mul behind '{name}'");
        }
        bool unsigned = format is StorageFormat.UInt8 or StorageFormat.UInt4;
        Assert.Equal(unsigned, offsets is not null);
        var scale = Constant(scope, node.Input[1]);
        Assert.Equal(3, scale.Dims.Count);
        Assert.Equal(1, scale.Dims[2]);
        int channels = (int)scale.Dims[0], blocks = (int)scale.Dims[1];
        var scales = TensorData.ToFloatArray(scale);

        var decode = scope.Producer(node.Input[0])!;
        int[] codes;
        OnnxDataType type;
        bool table = decode.OpType == "Reshape";
        if (table)
        {
            // Reshape ← Gather(table, Cast(packed → int32)).
            var gather = scope.Producer(decode.Input[0])!;
            Assert.Equal("Gather", gather.OpType);
            var cast = scope.Producer(gather.Input[1])!;
            Assert.Equal("Cast", cast.OpType);
            var packed = Constant(scope, cast.Input[0]);
            type = OnnxDataTypes.FromWire(packed.DataType);
            Assert.Equal(OnnxDataType.UInt8, type);
            var bytes = packed.RawData.ToByteArray();
            int bits = format switch { StorageFormat.Int8 or StorageFormat.UInt8 => 8, StorageFormat.Int4 or StorageFormat.UInt4 => 4, StorageFormat.Int2 => 2, _ => 1 };
            int perByte = 8 / bits;
            codes = new int[bytes.Length * perByte];
            for (int i = 0; i < codes.Length; i++)
            {
                int field = (bytes[i / perByte] >> (i % perByte * bits)) & ((1 << bits) - 1);
                codes[i] = format == StorageFormat.Binary ? (field == 1 ? 1 : -1) : unsigned ? field
                    : field >= 1 << (bits - 1) ? field - (1 << bits) : field;
            }
        }
        else
        {
            Assert.Equal("Cast", decode.OpType);
            var q = Constant(scope, decode.Input[0]);
            type = OnnxDataTypes.FromWire(q.DataType);
            var raw = q.RawData.ToByteArray();
            long count = q.Dims.Aggregate(1L, (a, b) => a * b);
            codes = new int[count];
            for (int i = 0; i < count; i++)
            {
                // int4/uint4: two per byte, the first in the low nibble; int4 in 4-bit two's complement.
                int nibble = type is OnnxDataType.Int4 or OnnxDataType.UInt4 ? (raw[i / 2] >> (i % 2 * 4)) & 0xF : 0;
                codes[i] = type switch
                {
                    OnnxDataType.Int8 => (sbyte)raw[i],
                    OnnxDataType.UInt8 => raw[i],
                    OnnxDataType.UInt4 => nibble,
                    _ => nibble >= 8 ? nibble - 16 : nibble,
                };
            }
        }
        // Every channel starts on a whole byte, so the codes split evenly into channels.
        Assert.Equal(0, codes.Length % channels);
        int padded = codes.Length / channels;
        return new Stored(codes, scales, channels, blocks, padded, type, table, offsets);
    }

    /// <summary>
    /// The float weight the stored values mean, in the original layout: element (o, c, i) around channel axis
    /// <paramref name="axis"/> is code[c·padded + o·inner + i] · scale[c, (o·inner + i) / blockSize], plus offset[c, same block]
    /// for uint8/uint4 (in float, multiply then add, as the expansion computes it).
    /// </summary>
    public static float[] Dequantize(Stored s, long[] dims, int? axis)
    {
        long count = dims.Aggregate(1L, (a, b) => a * b);
        long outer = 1, inner = 1;
        if (axis is int a)
        {
            for (int k = 0; k < a; k++) outer *= dims[k];
            for (int k = a + 1; k < dims.Length; k++) inner *= dims[k];
        }
        else inner = count;
        Assert.Equal(axis is int ax ? dims[ax] : 1, s.Channels);
        int blockSize = s.Padded / s.Blocks;
        var w = new float[count];
        for (long o = 0; o < outer; o++)
            for (int c = 0; c < s.Channels; c++)
                for (long i = 0; i < inner; i++)
                {
                    long r = o * inner + i;
                    float q = s.Codes[c * s.Padded + r];
                    int k = c * s.Blocks + (int)(r / blockSize);
                    float scaled = q * s.Scales[k];
                    w[(o * s.Channels + c) * inner + i] = s.Offsets is null ? scaled : scaled + s.Offsets[k];
                }
        return w;
    }

    /// <summary>
    /// Checks each scale against the formula recomputed with plain loops (max|w| / qmax, or mean|w| for binary;
    /// uint8/uint4: (max(0, max w) − min(0, min w)) / qmax, with offset −round(−min / scale) · scale), and each element:
    /// binary codes are sign(w); integer codes lie in ±qmax (unsigned: [0, qmax]) and reconstruct within scale/2;
    /// unsigned formats give an exact 0 back for every 0.
    /// </summary>
    public static void AssertBound(float[] original, float[] dequantized, Stored s, long[] dims, int? axis, StorageFormat format)
    {
        long outer = 1, inner = original.Length;
        if (axis is int a)
        {
            outer = 1; inner = 1;
            for (int k = 0; k < a; k++) outer *= dims[k];
            for (int k = a + 1; k < dims.Length; k++) inner *= dims[k];
        }
        int blockSize = s.Padded / s.Blocks;
        int qmax = format switch { StorageFormat.Int8 => 127, StorageFormat.Int4 => 7, StorageFormat.UInt8 => 255, StorageFormat.UInt4 => 15, _ => 1 };
        bool unsigned = format is StorageFormat.UInt8 or StorageFormat.UInt4;
        var hi = new double[s.Scales.Length];
        var lo = new double[s.Scales.Length];
        // Recompute each block's scale with plain loops: max|w| / qmax, or mean|w| for binary.
        var max = new double[s.Scales.Length];
        var sum = new double[s.Scales.Length];
        var n = new int[s.Scales.Length];
        for (long o = 0; o < outer; o++)
            for (int c = 0; c < s.Channels; c++)
                for (long i = 0; i < inner; i++)
                {
                    long r = o * inner + i;
                    int k = c * s.Blocks + (int)(r / blockSize);
                    double signed = original[(o * s.Channels + c) * inner + i], v = Math.Abs(signed);
                    hi[k] = Math.Max(hi[k], signed); // starts at 0: the range always holds 0
                    lo[k] = Math.Min(lo[k], signed);
                    max[k] = Math.Max(max[k], v);
                    sum[k] += v;
                    n[k]++;
                }
        for (int k = 0; k < s.Scales.Length; k++)
        {
            double expected = format == StorageFormat.Binary ? sum[k] / n[k]
                : unsigned ? (hi[k] == lo[k] ? 1 : (hi[k] - lo[k]) / qmax)
                : max[k] == 0 ? 1 : max[k] / qmax;
            Assert.True(Math.Abs(s.Scales[k] - expected) <= 1e-5 * expected + 1e-12, $"scale {k}: {s.Scales[k]} vs reference {expected}");
            if (unsigned)
            {
                double zp = Math.Clamp(Math.Round(-lo[k] / s.Scales[k], MidpointRounding.ToEven), 0, qmax);
                Assert.Equal(-(float)(zp * s.Scales[k]), s.Offsets![k]);
            }
        }
        for (long o = 0; o < outer; o++)
            for (int c = 0; c < s.Channels; c++)
                for (long i = 0; i < inner; i++)
                {
                    long r = o * inner + i, at = (o * s.Channels + c) * inner + i;
                    float scale = s.Scales[c * s.Blocks + (int)(r / blockSize)];
                    int q = s.Codes[c * s.Padded + r];
                    if (format == StorageFormat.Binary)
                        Assert.Equal(original[at] >= 0 ? 1 : -1, q);
                    else if (unsigned)
                    {
                        Assert.True(q >= 0 && q <= qmax, $"code {q} at {at} is outside [0, {qmax}]");
                        // Multiply then add in float: a half-ulp of up to qmax · scale on top of half a step.
                        double error = Math.Abs(dequantized[at] - original[at]);
                        Assert.True(error <= scale / 2.0 * (1 + 1e-4) + 1e-12, $"element {at}: error {error} > scale/2 = {scale / 2}");
                        if (original[at] == 0) Assert.True(dequantized[at] == 0, $"element {at}: 0 came back as {dequantized[at]}");
                    }
                    else
                    {
                        Assert.True(Math.Abs(q) <= qmax, $"code {q} at {at} is outside ±{qmax}");
                        double error = Math.Abs(dequantized[at] - original[at]);
                        Assert.True(error <= scale / 2.0 * (1 + 1e-5) + 1e-12, $"element {at}: error {error} > scale/2 = {scale / 2}");
                    }
                }
    }

    /// <summary>A copy of <paramref name="modelBytes"/> whose initializer <paramref name="name"/> holds <paramref name="values"/> as float.</summary>
    public static byte[] WithWeights(byte[] modelBytes, IReadOnlyDictionary<string, float[]> weights)
    {
        var graph = ModelGraph.FromBytes(modelBytes);
        foreach (var (name, values) in weights)
        {
            var t = graph.Main.Initializer(name)!;
            var dims = t.Dims.ToArray();
            graph.Main.ReplaceConstant(name, TensorData.FromFloats(name, dims, values));
        }
        return graph.ToBytes();
    }

    private static TensorProto Constant(GraphScope scope, string name)
    {
        for (var s = scope; s is not null; s = s.Parent)
            if (s.ConstantValue(name) is { } t) return t;
        throw new Xunit.Sdk.XunitException($"'{name}' is not a constant");
    }

    /// <summary>Bitwise equality of two ONNX Runtime outputs.</summary>
    public static void AssertExactlyEqual(float[][] expected, float[][] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int k = 0; k < expected.Length; k++)
        {
            Assert.Equal(expected[k].Length, actual[k].Length);
            for (int i = 0; i < expected[k].Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(expected[k][i]) == BitConverter.SingleToInt32Bits(actual[k][i]),
                    $"output {k}[{i}]: {actual[k][i]} vs reference {expected[k][i]}");
        }
    }

    /// <summary>Cosine, re-exported for the storage tests.</summary>
    public static double CosineOf(float[] a, float[] b) => Cosine(a, b);
}
