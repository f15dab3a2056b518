using BenchmarkDotNet.Attributes;
using MLNetCompress.Onnx;

namespace MLNetCompress.Benchmarks.Micro;

/// <summary>Decoding tensor payloads to float: the first step of every pass over a weight.</summary>
[MemoryDiagnoser]
public class TensorDecodeBenchmarks
{
    private byte[] float16 = [], bfloat16 = [], int8 = [], int4 = [];
    private float[] destination = [];

    /// <summary>Elements per tensor (a 512×4608 ResNet18 weight is 2.4 M).</summary>
    [Params(1 << 20)]
    public int Count { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        float16 = new byte[Count * 2];
        bfloat16 = new byte[Count * 2];
        int8 = new byte[Count];
        int4 = new byte[Count / 2];
        random.NextBytes(int8);
        random.NextBytes(int4);
        for (int i = 0; i < Count; i++)
        {
            float v = (float)(random.NextDouble() * 2 - 1);
            BitConverter.TryWriteBytes(float16.AsSpan(i * 2), (Half)v);
            BitConverter.TryWriteBytes(bfloat16.AsSpan(i * 2), TensorData.FloatToBFloat16(v));
        }
        destination = new float[Count];
    }

    [Benchmark] public void Float16() => TensorData.DecodeToFloat(OnnxDataType.Float16, float16, destination);
    [Benchmark] public void BFloat16() => TensorData.DecodeToFloat(OnnxDataType.BFloat16, bfloat16, destination);
    [Benchmark] public void Int8() => TensorData.DecodeToFloat(OnnxDataType.Int8, int8, destination);
    [Benchmark] public void Int4() => TensorData.DecodeToFloat(OnnxDataType.Int4, int4, destination);
}
