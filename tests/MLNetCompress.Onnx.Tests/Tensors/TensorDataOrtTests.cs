using MLNetCompress.Onnx.Proto;
using MLNetCompress.Testing;

namespace MLNetCompress.Onnx.Tests.Tensors;

/// <summary>
/// ONNX Runtime reads the same tensors TensorData reads: initializers of every type, in raw_data and in
/// the typed fields, are cast (or dequantized) to float and int64 by ORT, and ORT's numbers equal
/// TensorData's decode.
/// </summary>
public class TensorDataOrtTests
{
    private const int CastToFloat = 1, CastToInt64 = 7;

    // Every type but int2/uint2 goes through Cast: opset 21 is the first whose Cast takes int4/uint4.
    private static readonly OnnxDataType[] CastIntegers =
    [
        OnnxDataType.Int8, OnnxDataType.UInt8, OnnxDataType.Int16, OnnxDataType.UInt16, OnnxDataType.Int32,
        OnnxDataType.UInt32, OnnxDataType.Int64, OnnxDataType.UInt64, OnnxDataType.Bool, OnnxDataType.Int4, OnnxDataType.UInt4,
    ];

    // Floats that are not all exact in 16 bits, so ORT sees what our rounding stored.
    private static readonly float[] Floats = [0f, 1f, -2.5f, 3.14159265f, 1e-3f, -65504f, 1e-7f, 0.1f, 1234.5678f, -0f];

    [Fact]
    public void OrtCastsEveryTypeToTheValuesTensorDataDecodes()
    {
        var b = TestModels.Model(opset: 21, irVersion: 10);
        var expectedFloat = new Dictionary<string, float[]>();
        var expectedInt = new Dictionary<string, long[]>();
        var tensors = new List<TensorProto>();
        foreach (var type in CastIntegers)
        {
            var values = TensorDataTests.IntegerCases.Single(c => c.Type == type).Values;
            tensors.Add(TensorData.FromIntegers($"{type}_raw", [values.Length], type, values));
            tensors.Add(TensorDataTests.HandTyped($"{type}_typed", type, values));
        }
        foreach (var type in TensorDataTests.FloatTypes)
        {
            tensors.Add(TensorData.FromFloats($"{type}_raw", [Floats.Length], Floats, type));
            tensors.Add(TensorDataTests.HandTyped($"{type}_typed", type, Floats));
        }
        foreach (var t in tensors)
        {
            var type = OnnxDataTypes.FromWire(t.DataType);
            b.Initializer(t).Node("Cast", [t.Name], [t.Name + "_f"], Attr.Int("to", CastToFloat))
                .Output(t.Name + "_f", OnnxDataType.Float, t.Dims[0]);
            expectedFloat[t.Name + "_f"] = TensorData.ToFloatArray(t);
            if (!OnnxDataTypes.IsFloatingPoint(type))
            {
                b.Node("Cast", [t.Name], [t.Name + "_i"], Attr.Int("to", CastToInt64)).Output(t.Name + "_i", OnnxDataType.Int64, t.Dims[0]);
                expectedInt[t.Name + "_i"] = TensorData.ToInt64Array(t);
            }
        }
        var outputs = Ort.Run(b.ToBytes());
        Assert.Equal(expectedFloat.Count + expectedInt.Count, outputs.Length);
        foreach (var o in outputs)
        {
            if (expectedFloat.TryGetValue(o.Name, out var f))
                Assert.True(f.Select(BitConverter.SingleToUInt32Bits).SequenceEqual(o.Floats.Select(BitConverter.SingleToUInt32Bits)),
                    $"{o.Name}: ORT [{string.Join(", ", o.Floats)}] vs TensorData [{string.Join(", ", f)}]");
            else
                Assert.True(expectedInt[o.Name].SequenceEqual(o.Int64s),
                    $"{o.Name}: ORT [{string.Join(", ", o.Int64s)}] vs TensorData [{string.Join(", ", expectedInt[o.Name])}]");
        }
        // The decode is also what the values were (ORT, TensorData and the hand values all agree).
        Assert.Equal(TensorDataTests.IntegerCases.Single(c => c.Type == OnnxDataType.Int4).Values, expectedInt["Int4_typed_i"]);
        Assert.Equal(Floats.Select(v => (float)(Half)v), expectedFloat["Float16_raw_f"]);
    }

    [Fact]
    public void OrtDequantizesInt2AndUInt2ToTheValuesTensorDataDecodes()
    {
        // DequantizeLinear takes int2/uint2 from opset 25; with scale 1 and zero point 0 it gives the values.
        var b = TestModels.Model(opset: 25, irVersion: 11).Initializer(TestTensors.Float("scale", [], 1f));
        var expected = new Dictionary<string, float[]>();
        foreach (var type in new[] { OnnxDataType.Int2, OnnxDataType.UInt2 })
        {
            var values = TensorDataTests.IntegerCases.Single(c => c.Type == type).Values;
            foreach (var t in new[] { TensorData.FromIntegers($"{type}_raw", [values.Length], type, values), TensorDataTests.HandTyped($"{type}_typed", type, values) })
            {
                b.Initializer(t).Initializer(TensorData.FromIntegers(t.Name + "_zp", [], type, [0]))
                    .Node("DequantizeLinear", [t.Name, "scale", t.Name + "_zp"], [t.Name + "_f"])
                    .Output(t.Name + "_f", OnnxDataType.Float, values.Length);
                expected[t.Name + "_f"] = TensorData.ToFloatArray(t);
                Assert.Equal(values.Select(v => (float)v), expected[t.Name + "_f"]);
            }
        }
        var outputs = Ort.Run(b.ToBytes());
        Assert.Equal(4, outputs.Length);
        foreach (var o in outputs) Assert.Equal(expected[o.Name], o.Floats);
    }

    [Fact]
    public void OrtDequantizesInt4WithTheValuesTensorDataDecodes()
    {
        // Blocked int4 dequantization as quantized weights use it: y = (q - zp) * scale per block of 2 along axis 0.
        sbyte[] q = [1, -2, 3, -8, 7, 0, -1, 5];
        float[] scale = [0.5f, 0.25f, 2f, 1f];
        var b = TestModels.Model(opset: 21, irVersion: 10)
            .Initializer(TensorData.FromInt4("q", [8, 1], q))
            .Initializer(TestTensors.Float("scale", [4, 1], scale))
            .Initializer(TensorData.FromInt4("zp", [4, 1], [0, 1, -1, 0]))
            .Node("DequantizeLinear", ["q", "scale", "zp"], ["y"], Attr.Int("axis", 0), Attr.Int("block_size", 2))
            .Output("y", OnnxDataType.Float, 8, 1);
        var decodedQ = TensorData.ToInt64Array(b.Build().Graph.Initializer[0]);
        var decodedZp = TensorData.ToInt64Array(b.Build().Graph.Initializer[2]);
        var expected = Enumerable.Range(0, 8).Select(i => (decodedQ[i] - decodedZp[i / 2]) * scale[i / 2]).ToArray();
        Assert.Equal(new float[] { 0.5f, -1f, 0.5f, -2.25f, 16f, 2f, -1f, 5f }, expected);
        Assert.Equal(expected, Assert.Single(Ort.Run(b.ToBytes())).Floats);
    }
}
