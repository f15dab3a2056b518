using System.Buffers.Binary;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Testing;

namespace MLNetCompress.Onnx.Tests.Tensors;

/// <summary>
/// TensorData against hand-encoded payloads: every type round-trips through raw_data and through the
/// typed fields as onnx.proto lays them out; sub-byte packing and 16-bit float rounding match the
/// spec, System.Half and hand-computed bit patterns.
/// </summary>
public class TensorDataTests
{
    // ---- the types and the values each test uses ---------------------------------------------

    /// <summary>Integer types with values covering both ends of each range.</summary>
    public static readonly (OnnxDataType Type, long[] Values)[] IntegerCases =
    [
        (OnnxDataType.Int8, [0, 1, -1, 127, -128, 42, -7]),
        (OnnxDataType.UInt8, [0, 1, 255, 128, 42]),
        (OnnxDataType.Int16, [0, -2, 32767, -32768, 1234, -1234]),
        (OnnxDataType.UInt16, [0, 65535, 32768, 1234]),
        (OnnxDataType.Int32, [0, -1, int.MaxValue, int.MinValue, 123456789, 16777216]),
        (OnnxDataType.UInt32, [0, 1, uint.MaxValue, 0xDEADBEEF, 16777216]),
        (OnnxDataType.Int64, [0, -1, long.MaxValue, long.MinValue, 1L << 40, -(1L << 40)]),
        (OnnxDataType.UInt64, [0, 1, -1 /* 2^64-1 */, long.MinValue /* 2^63 */, 1L << 40]),
        (OnnxDataType.Bool, [0, 1, 1, 0, 1]),
        (OnnxDataType.Int4, [1, -2, 3, -8, 7, 0, -1]),
        (OnnxDataType.UInt4, [1, 14, 3, 0, 15, 8, 7]),
        (OnnxDataType.Int2, [1, -2, -1, 0, 1, -2, 0]),
        (OnnxDataType.UInt2, [1, 2, 3, 0, 3, 1, 2]),
    ];

    /// <summary>Floats exactly representable in every floating type (so each round-trips exactly).</summary>
    public static readonly float[] ExactFloats = [0f, -0f, 1f, -2f, 0.5f, 3.25f, -1024f, 0.00390625f, 96f];

    public static readonly OnnxDataType[] FloatTypes = [OnnxDataType.Float, OnnxDataType.Float16, OnnxDataType.BFloat16, OnnxDataType.Double];

    public static TheoryData<OnnxDataType> IntegerTypes => [.. IntegerCases.Select(c => c.Type)];

    public static TheoryData<OnnxDataType> FloatingTypes => [.. FloatTypes];

    private static long[] ValuesOf(OnnxDataType type) => IntegerCases.Single(c => c.Type == type).Values;

    // ---- hand encodings, written from onnx.proto's comments ------------------------------------

    /// <summary>raw_data of integers: little-endian two's complement, or packed first-value-lowest for 4 and 2 bits.</summary>
    internal static byte[] HandRaw(OnnxDataType type, long[] values)
    {
        int bits = type switch
        {
            OnnxDataType.Int2 or OnnxDataType.UInt2 => 2,
            OnnxDataType.Int4 or OnnxDataType.UInt4 => 4,
            OnnxDataType.Int8 or OnnxDataType.UInt8 or OnnxDataType.Bool => 8,
            OnnxDataType.Int16 or OnnxDataType.UInt16 => 16,
            OnnxDataType.Int32 or OnnxDataType.UInt32 => 32,
            _ => 64,
        };
        var raw = new byte[(values.Length * bits + 7) / 8];
        for (int i = 0; i < values.Length; i++)
        {
            if (bits >= 8)
            {
                var bytes = BitConverter.GetBytes(values[i]); // little-endian on every .NET platform we run on
                Assert.True(BitConverter.IsLittleEndian);
                Array.Copy(bytes, 0, raw, i * bits / 8, bits / 8);
            }
            else
            {
                int perByte = 8 / bits;
                raw[i / perByte] |= (byte)((values[i] & ((1 << bits) - 1)) << (bits * (i % perByte)));
            }
        }
        return raw;
    }

    /// <summary>The same integers in the typed field onnx.proto names for the type.</summary>
    internal static TensorProto HandTyped(string name, OnnxDataType type, long[] values)
    {
        var t = TestTensors.Header(name, [values.Length], type);
        switch (type)
        {
            case OnnxDataType.Int64:
                t.Int64Data.AddRange(values);
                break;
            case OnnxDataType.UInt32 or OnnxDataType.UInt64:
                t.Uint64Data.AddRange(values.Select(v => (ulong)v));
                break;
            case OnnxDataType.Int4 or OnnxDataType.UInt4 or OnnxDataType.Int2 or OnnxDataType.UInt2:
                // Sub-byte types: one packed byte per int32_data entry.
                t.Int32Data.AddRange(HandRaw(type, values).Select(b => (int)b));
                break;
            default:
                t.Int32Data.AddRange(values.Select(v => (int)v));
                break;
        }
        return t;
    }

    /// <summary>raw_data of floats stored as a floating type.</summary>
    internal static byte[] HandRaw(OnnxDataType type, float[] values) => type switch
    {
        OnnxDataType.Float => values.SelectMany(v => BitConverter.GetBytes(v)).ToArray(),
        OnnxDataType.Double => values.SelectMany(v => BitConverter.GetBytes((double)v)).ToArray(),
        OnnxDataType.Float16 => values.SelectMany(v => BitConverter.GetBytes(BitConverter.HalfToUInt16Bits((Half)v))).ToArray(),
        OnnxDataType.BFloat16 => values.SelectMany(v => BitConverter.GetBytes(NearestBFloat16(v))).ToArray(),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>The same floats in their typed field: float_data, double_data, or 16-bit patterns in int32_data.</summary>
    internal static TensorProto HandTyped(string name, OnnxDataType type, float[] values)
    {
        var t = TestTensors.Header(name, [values.Length], type);
        switch (type)
        {
            case OnnxDataType.Float: t.FloatData.AddRange(values); break;
            case OnnxDataType.Double: t.DoubleData.AddRange(values.Select(v => (double)v)); break;
            case OnnxDataType.Float16: t.Int32Data.AddRange(values.Select(v => (int)BitConverter.HalfToUInt16Bits((Half)v))); break;
            case OnnxDataType.BFloat16: t.Int32Data.AddRange(values.Select(v => (int)NearestBFloat16(v))); break;
        }
        return t;
    }

    /// <summary>
    /// bfloat16 by definition: of the two bfloat16 values around x (its top 16 bits, and the next one up
    /// in magnitude), the nearer in exact double arithmetic; on a tie, the one with an even last bit.
    /// </summary>
    internal static ushort NearestBFloat16(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        ushort down = (ushort)(bits >> 16), up = (ushort)(down + 1);
        double exact = x, a = BitConverter.UInt32BitsToSingle((uint)down << 16), b = BitConverter.UInt32BitsToSingle((uint)up << 16);
        double da = Math.Abs(exact - a), db = Math.Abs(exact - b);
        if (double.IsInfinity(b) && !double.IsInfinity(exact))
            db = Math.Abs(exact) - Math.Abs(a) >= Math.Pow(2, 127 - 8) ? da : double.PositiveInfinity; // past the halfway point to 2^128
        return da < db ? down : db < da ? up : (down & 1) == 0 ? down : up;
    }

    // ---- round trips ------------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(IntegerTypes))]
    public void Integers_RoundTripThroughRawData(OnnxDataType type)
    {
        var values = ValuesOf(type);
        var encoded = TensorData.FromIntegers("t", [values.Length], type, values);
        Assert.Equal(HandRaw(type, values), encoded.RawData.ToByteArray());
        Assert.Equal(values, TensorData.ToInt64Array(encoded));
        var hand = TestTensors.Raw("t", [values.Length], type, HandRaw(type, values));
        Assert.Equal(values, TensorData.ToInt64Array(hand));
        // As floats: uint64 values are unsigned, the rest as they are.
        var expectedFloats = values.Select(v => type == OnnxDataType.UInt64 ? (float)(ulong)v : (float)v);
        Assert.Equal(expectedFloats, TensorData.ToFloatArray(hand));
    }

    [Theory]
    [MemberData(nameof(IntegerTypes))]
    public void Integers_RoundTripThroughTypedFields(OnnxDataType type)
    {
        var values = ValuesOf(type);
        var typed = HandTyped("t", type, values);
        Assert.True(typed.RawData.IsEmpty);
        Assert.Equal(values, TensorData.ToInt64Array(typed));
        Assert.Equal(HandRaw(type, values), TensorData.RawBytes(typed).ToArray());
    }

    [Theory]
    [MemberData(nameof(FloatingTypes))]
    public void Floats_RoundTripThroughRawAndTypedStorage(OnnxDataType type)
    {
        var encoded = TensorData.FromFloats("t", [ExactFloats.Length], ExactFloats, type);
        Assert.Equal(HandRaw(type, ExactFloats), encoded.RawData.ToByteArray());
        AssertBitwiseEqual(ExactFloats, TensorData.ToFloatArray(encoded));
        var typed = HandTyped("t", type, ExactFloats);
        AssertBitwiseEqual(ExactFloats, TensorData.ToFloatArray(typed));
        Assert.Equal(HandRaw(type, ExactFloats), TensorData.RawBytes(typed).ToArray());
    }

    [Fact]
    public void Int4_PacksFirstValueInTheLowNibble()
    {
        // From the spec: [1, -2, 3] → 0xE1 (−2 = 0xE high, 1 low), 0x03 (3 low, padding high).
        Assert.Equal(new byte[] { 0xE1, 0x03 }, TensorData.FromInt4("q", [3], [1, -2, 3]).RawData.ToByteArray());
        Assert.Equal(new byte[] { 0xE1, 0x03 }, TensorData.FromUInt4("q", [3], [1, 14, 3]).RawData.ToByteArray());
        Assert.Equal(new byte[] { 0x87, 0xF0 }, TensorData.FromIntegers("q", [4], OnnxDataType.Int4, [7, -8, 0, -1]).RawData.ToByteArray());
        var packed = new byte[2];
        TensorData.PackInt4([1, -2, 3], packed);
        Assert.Equal(new byte[] { 0xE1, 0x03 }, packed);
        Assert.Equal([1, -2, 3], Enumerable.Range(0, 3).Select(i => TensorData.UnpackInt4(packed, i)));
        Assert.Equal([1, 14, 3], Enumerable.Range(0, 3).Select(i => TensorData.UnpackUInt4(packed, i)));
        // int2: four per byte, lowest bits first. [1, -2, -1, 0] = 01 | 10<<2 | 11<<4 | 00<<6 = 0x39; then 1.
        Assert.Equal(new byte[] { 0x39, 0x01 }, TensorData.FromIntegers("q", [5], OnnxDataType.Int2, [1, -2, -1, 0, 1]).RawData.ToByteArray());
        var packed2 = new byte[2];
        TensorData.PackInt2([1, -2, -1, 0, 1], packed2);
        Assert.Equal(new byte[] { 0x39, 0x01 }, packed2);
        TensorData.PackUInt2([1, 2, 3, 0, 1], packed2);
        Assert.Equal(new byte[] { 0x39, 0x01 }, packed2);
        Assert.Equal([1, -2, -1, 0, 1], Enumerable.Range(0, 5).Select(i => TensorData.UnpackInt2(packed2, i)));
        Assert.Equal([1, 2, 3, 0, 1], Enumerable.Range(0, 5).Select(i => TensorData.UnpackUInt2(packed2, i)));
    }

    [Fact]
    public void LittleEndianLayout_MatchesHandWrittenBytes()
    {
        Assert.Equal(new byte[] { 0xFE, 0xFF }, TensorData.FromIntegers("a", [1], OnnxDataType.Int16, [-2]).RawData.ToByteArray());
        Assert.Equal(new byte[] { 0xEF, 0xBE, 0xAD, 0xDE }, TensorData.FromIntegers("a", [1], OnnxDataType.UInt32, [0xDEADBEEF]).RawData.ToByteArray());
        Assert.Equal(new byte[] { 0x00, 0x00, 0x80, 0x3F }, TensorData.FromFloats("a", [1], [1f]).RawData.ToByteArray());
        Assert.Equal(new byte[] { 0x00, 0x3C }, TensorData.FromFloats("a", [1], [1f], OnnxDataType.Float16).RawData.ToByteArray());
        Assert.Equal(new byte[] { 0x80, 0x3F }, TensorData.FromFloats("a", [1], [1f], OnnxDataType.BFloat16).RawData.ToByteArray());
    }

    [Fact]
    public void OutOfRangeValues_AreRefusedOnEncode()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => TensorData.FromIntegers("a", [1], OnnxDataType.Int4, [8]));
        Assert.Throws<ArgumentOutOfRangeException>(() => TensorData.FromIntegers("a", [1], OnnxDataType.UInt2, [4]));
        Assert.Throws<ArgumentOutOfRangeException>(() => TensorData.FromIntegers("a", [1], OnnxDataType.UInt8, [-1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => TensorData.FromIntegers("a", [1], OnnxDataType.Bool, [2]));
        Assert.Throws<ArgumentOutOfRangeException>(() => TensorData.PackInt4([-9], new byte[1]));
        Assert.Throws<ArgumentException>(() => TensorData.FromFloats("a", [3], [1f, 2f]));
    }

    [Fact]
    public void DecodeToFloat_RefusesABufferShorterThanTheValuesAsked()
    {
        var dest = new float[3];
        Assert.Throws<ArgumentException>(() => TensorData.DecodeToFloat(OnnxDataType.Float, new byte[11], dest));
        Assert.Throws<ArgumentException>(() => TensorData.DecodeToFloat(OnnxDataType.Int4, new byte[1], dest));
        TensorData.DecodeToFloat(OnnxDataType.Int4, [0xE1, 0x03], dest); // 3 int4 values fit 2 bytes
        Assert.Equal([1f, -2f, 3f], dest);
    }

    // ---- 16-bit float rounding ------------------------------------------------------------------

    public static TheoryData<float, ushort> Float16Cases => new()
    {
        { 1f, 0x3C00 },
        { -2f, 0xC000 },
        { 65504f, 0x7BFF },                        // largest finite half
        { 65519.996f, 0x7BFF },                    // just under the halfway point to 65536
        { 65520f, 0x7C00 },                        // halfway, 65504's mantissa is odd: rounds up to infinity
        { 1f + MathF.Pow(2, -11), 0x3C00 },        // halfway between 1 and 1+2^-10: the even one, 1
        { 1f + 3 * MathF.Pow(2, -11), 0x3C02 },    // halfway between 0x3C01 and 0x3C02: the even one
        { 1f + 1.5f * MathF.Pow(2, -11), 0x3C01 }, // past halfway: up
        { MathF.Pow(2, -24), 0x0001 },             // smallest subnormal
        { MathF.Pow(2, -25), 0x0000 },             // halfway to zero: even, zero
        { 3 * MathF.Pow(2, -26), 0x0001 },         // 0.75 of the smallest subnormal: up
        { MathF.Pow(2, -14), 0x0400 },             // smallest normal
        { float.PositiveInfinity, 0x7C00 },
        { float.NegativeInfinity, 0xFC00 },
    };

    [Theory]
    [MemberData(nameof(Float16Cases))]
    public void Float16_RoundsToNearestEven_LikeHandComputation(float value, ushort expected)
    {
        var raw = TensorData.FromFloats("h", [1], [value], OnnxDataType.Float16).RawData.ToByteArray();
        Assert.Equal(expected, BinaryPrimitives.ReadUInt16LittleEndian(raw));
        Assert.Equal(BitConverter.HalfToUInt16Bits((Half)value), expected); // System.Half agrees with the hand value
    }

    public static TheoryData<uint, ushort> BFloat16Cases => new()
    {
        { 0x3F800000, 0x3F80 },  // 1
        { 0x3F808000, 0x3F80 },  // 1 + 2^-8, halfway: the even one
        { 0x3F818000, 0x3F82 },  // halfway between 0x3F81 and 0x3F82: the even one
        { 0x3F808001, 0x3F81 },  // past halfway: up
        { 0x3F807FFF, 0x3F80 },  // short of halfway: down
        { 0xBF80C000, 0xBF81 },  // negative: rounds in magnitude
        { 0x7F7FFFFF, 0x7F80 },  // float.MaxValue rounds to infinity
        { 0x7F800000, 0x7F80 },  // infinity stays
        { 0x00000001, 0x0000 },  // smallest subnormal float: to zero
        { 0x80000000, 0x8000 },  // -0 keeps its sign
    };

    [Theory]
    [MemberData(nameof(BFloat16Cases))]
    public void BFloat16_RoundsToNearestEven_LikeHandComputation(uint floatBits, ushort expected)
    {
        float value = BitConverter.UInt32BitsToSingle(floatBits);
        Assert.Equal(expected, TensorData.FloatToBFloat16(value));
        Assert.Equal(expected, NearestBFloat16(value)); // the definition agrees with the hand value
        var raw = TensorData.FromFloats("b", [1], [value], OnnxDataType.BFloat16).RawData.ToByteArray();
        Assert.Equal(expected, BinaryPrimitives.ReadUInt16LittleEndian(raw));
        // Decoding is exact: bfloat16 is the top half of a float.
        Assert.Equal(BitConverter.UInt32BitsToSingle((uint)expected << 16), TensorData.ToFloatArray(TestTensors.Raw("b", [], OnnxDataType.BFloat16, raw))[0]);
    }

    [Fact]
    public void SixteenBitFloats_MatchReferencesOnManyRandomValues()
    {
        var rng = new Random(3);
        var values = new float[20_000];
        for (int i = 0; i < values.Length; i++)
            values[i] = i % 2 == 0
                ? (float)((rng.NextDouble() * 2 - 1) * Math.Pow(2, rng.Next(-30, 20)))             // across half's range
                : BitConverter.UInt32BitsToSingle((uint)rng.NextInt64(0, 1L << 32) & 0xFF7FFFFF);  // any finite bit pattern
        var half = TensorData.FromFloats("h", [values.Length], values, OnnxDataType.Float16);
        var bf = TensorData.FromFloats("b", [values.Length], values, OnnxDataType.BFloat16);
        var halfDecoded = TensorData.ToFloatArray(half);
        var bfDecoded = TensorData.ToFloatArray(bf);
        for (int i = 0; i < values.Length; i++)
        {
            var h = (Half)values[i];
            Assert.Equal(BitConverter.HalfToUInt16Bits(h), BinaryPrimitives.ReadUInt16LittleEndian(half.RawData.Span[(2 * i)..]));
            Assert.Equal(BitConverter.SingleToUInt32Bits((float)h), BitConverter.SingleToUInt32Bits(halfDecoded[i]));
            ushort b = NearestBFloat16(values[i]);
            Assert.Equal(b, BinaryPrimitives.ReadUInt16LittleEndian(bf.RawData.Span[(2 * i)..]));
            Assert.Equal((uint)b << 16, BitConverter.SingleToUInt32Bits(bfDecoded[i]));
        }
    }

    [Fact]
    public void BFloat16_KeepsNaNs()
    {
        foreach (uint bits in new uint[] { 0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF })
        {
            ushort b = TensorData.FloatToBFloat16(BitConverter.UInt32BitsToSingle(bits));
            Assert.True(float.IsNaN(BitConverter.UInt32BitsToSingle((uint)b << 16)), $"0x{bits:X8} became 0x{b:X4}");
            Assert.Equal(bits >> 31, (uint)b >> 15);
        }
    }

    // ---- helpers ---------------------------------------------------------------------------------

    private static void AssertBitwiseEqual(float[] expected, float[] actual) =>
        Assert.Equal(expected.Select(BitConverter.SingleToUInt32Bits), actual.Select(BitConverter.SingleToUInt32Bits));
}
