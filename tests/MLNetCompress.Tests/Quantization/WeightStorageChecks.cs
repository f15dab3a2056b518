using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Microsoft.ML.OnnxRuntime;

namespace MLNetCompress.Tests.Quantization;

/// <summary>
/// Checks shared by the int8 storage tests, written independently of the pass's kernel: weights read back
/// from the rewritten graph, the reference formula, ONNX Runtime runs and ONNX Runtime's optimized graph.
/// </summary>
internal static class WeightStorageChecks
{
    /// <summary>The int8 values, the scales (with their shape) and the nodes that compute a stored weight back.</summary>
    public sealed record StoredWeight(float[] Quantized, float[] Scales, long[] ScaleDims, OnnxDataType QuantizedType, NodeProto Mul, NodeProto Cast);

    /// <summary>Follows weight ← [Cast back] ← Mul(Cast(q), scale) in the graph that defines <paramref name="name"/>.</summary>
    public static StoredWeight Stored(ModelGraph graph, string name)
    {
        foreach (var scope in graph.Scopes)
        {
            var producer = scope.Producer(name);
            if (producer is null) continue;
            if (producer.OpType == "Cast" && scope.Producer(producer.Input[0]) is { OpType: "Mul" } restoreFrom)
                producer = restoreFrom;
            Assert.Equal("Mul", producer.OpType);
            var cast = scope.Producer(producer.Input[0]);
            Assert.NotNull(cast);
            Assert.Equal("Cast", cast.OpType);
            var q = Constant(scope, cast.Input[0]);
            var scale = Constant(scope, producer.Input[1]);
            return new StoredWeight(TensorData.ToFloatArray(q), TensorData.ToFloatArray(scale), scale.Dims.ToArray(),
                OnnxDataTypes.FromWire(q.DataType), producer, cast);
        }
        throw new Xunit.Sdk.XunitException($"nothing produces '{name}' in the rewritten graph");
    }

    private static TensorProto Constant(GraphScope scope, string name)
    {
        for (var s = scope; s is not null; s = s.Parent)
            if (s.ConstantValue(name) is { } t) return t;
        throw new Xunit.Sdk.XunitException($"'{name}' is not a constant");
    }

    /// <summary>The channel axis a scale shape encodes (the one dim above 1), or null for one scale.</summary>
    public static int? AxisOf(long[] scaleDims)
    {
        for (int k = 0; k < scaleDims.Length; k++)
            if (scaleDims[k] > 1) return k;
        return null;
    }

    /// <summary>
    /// Checks, element by element, that the stored weight is the reference quantization of <paramref name="original"/>:
    /// scale = max|w|/127 per channel (recomputed here with plain loops), q integral in [-127, 127], and
    /// |q·scale − w| ≤ scale/2. Returns the largest error seen.
    /// </summary>
    public static double AssertMatchesReference(float[] original, long[] dims, StoredWeight stored)
    {
        Assert.Equal(original.Length, stored.Quantized.Length);
        Assert.Equal(OnnxDataType.Int8, stored.QuantizedType);
        int? axis = AxisOf(stored.ScaleDims);
        long channels = axis is int a ? dims[a] : 1;
        long inner = 1;
        if (axis is int ax) for (int k = ax + 1; k < dims.Length; k++) inner *= dims[k];
        Assert.Equal(channels, stored.Scales.Length);

        var max = new double[channels];
        for (long i = 0; i < original.Length; i++)
        {
            long c = axis is null ? 0 : i / inner % channels;
            max[c] = Math.Max(max[c], Math.Abs(original[i]));
        }
        for (long c = 0; c < channels; c++)
        {
            double expected = max[c] == 0 ? 1 : max[c] / 127;
            Assert.True(Math.Abs(stored.Scales[c] - expected) <= 1e-6 * expected, $"scale {c}: {stored.Scales[c]} vs reference {expected}");
        }
        double worst = 0;
        for (long i = 0; i < original.Length; i++)
        {
            long c = axis is null ? 0 : i / inner % channels;
            double q = stored.Quantized[i], s = stored.Scales[c];
            Assert.True(q == Math.Round(q) && Math.Abs(q) <= 127, $"q[{i}] = {q}");
            double error = Math.Abs(q * s - original[i]);
            // Half a step, plus float rounding of the division.
            Assert.True(error <= s / 2 * (1 + 1e-5) + 1e-12, $"element {i}: |{q}·{s} − {original[i]}| = {error} > scale/2");
            worst = Math.Max(worst, error);
        }
        return worst;
    }

    /// <summary>Runs a model in ONNX Runtime and returns a copy of every output.</summary>
    public static float[][] Run(byte[] model, IReadOnlyDictionary<string, NamedTensor> inputs)
    {
        using var runner = ModelRunner.Load(model, RuntimeOptions.Default with { IntraOpThreads = 2 });
        var outputs = runner.Run(inputs);
        return outputs.Outputs.Select(o => o.Data.ToArray()).ToArray();
    }

    /// <summary>Cosine similarity in double.</summary>
    public static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }
        return dot / Math.Sqrt(na * nb);
    }

    /// <summary>Deterministic floats from a normal distribution.</summary>
    public static float[] Gaussian(int count, int seed, float scale = 1)
    {
        var rng = new Random(seed);
        var v = new float[count];
        for (int i = 0; i < count; i++)
            v[i] = scale * (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        return v;
    }

    /// <summary>Loads a model file in ONNX Runtime at <paramref name="level"/> and reads back the graph ONNX Runtime optimized.</summary>
    public static ModelGraph OptimizedByOrt(string modelPath, GraphOptimizationLevel level = GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    {
        var optimized = Path.Combine(RealModels.TempDir("ort-optimized"), "optimized.onnx");
        var options = RuntimeOptions.Default with { GraphOptimizationLevel = level, OptimizedModelPath = optimized, IntraOpThreads = 2 };
        using (OrtSessionFactory.Create(modelPath, options)) { }
        Assert.True(File.Exists(optimized), "ONNX Runtime wrote no optimized model");
        return ModelGraph.Load(optimized);
    }

    /// <summary>
    /// Asserts that in ONNX Runtime's optimized graph every weight input of the given ops is a float
    /// initializer, and that no Cast or Mul reads an initializer: the int8 storage was folded at load.
    /// </summary>
    public static int AssertFolded(ModelGraph optimized, params string[] weightOps)
    {
        int weights = 0;
        foreach (var scope in optimized.Scopes)
            foreach (var n in scope.Nodes)
            {
                if (n.OpType is "Cast" or "Mul")
                    Assert.False(n.Input.Any(i => scope.Initializer(i) is { DataType: (int)OnnxDataType.Int8 }),
                        $"{n.OpType} '{n.Name}' still reads int8 storage after ONNX Runtime's optimizations");
                if (n.OpType == "Cast")
                    Assert.False(n.Input.Any(i => scope.Initializer(i) is not null),
                        $"Cast '{n.Name}' of an initializer was not folded");
                if (!weightOps.Contains(n.OpType) || n.Input.Count < 2) continue;
                var w = scope.Initializer(n.Input[1]);
                Assert.True(w is not null, $"{n.OpType} '{n.Name}' reads its weight '{n.Input[1]}' from a node, not an initializer");
                Assert.Equal((int)OnnxDataType.Float, w.DataType);
                weights++;
            }
        return weights;
    }
}

/// <summary>
/// The contract of the default pair-sum guard (<see cref="MLNetCompress.Quantization.KernelSafety.PairSumGuard.PairSafeWeights"/>)
/// for one output channel, checked from its definition: the scale is the 8-bit scale max|w|/127, widened at most to
/// (p₁ + p₂)/127.5 where p₁, p₂ are the two largest same-sign magnitudes, and after rounding any two same-sign codes of the
/// channel sum to at most 128 (so 255 × 128 stays inside int16).
/// </summary>
internal static class PairSafeChecks
{
    public static void AssertChannel(IReadOnlyList<float> weights, float scale, IReadOnlyList<float> codes) =>
        AssertChannels([(weights, codes)], scale);

    /// <summary>Output channels (accumulators) that share one scale: the bound holds in each.</summary>
    public static void AssertChannels(IReadOnlyList<(IReadOnlyList<float> Weights, IReadOnlyList<float> Codes)> channels, float scale)
    {
        float max = channels.Max(c => c.Weights.Max(MathF.Abs));
        float s0 = max / 127f;
        float pair = channels.Max(c => Math.Max(
            c.Weights.Where(w => w > 0).OrderDescending().Take(2).Sum(),
            c.Weights.Where(w => w < 0).Select(w => -w).OrderDescending().Take(2).Sum()));
        Assert.True(scale >= s0 * (1 - 1e-6f), $"scale {scale} below the 8-bit scale {s0}");
        Assert.True(scale <= Math.Max(s0, pair / 127.5f) * (1 + 1e-5f), $"scale {scale} wider than the pair bound needs ({Math.Max(s0, pair / 127.5f)})");
        foreach (var (weights, codes) in channels)
        {
            for (int i = 0; i < weights.Count; i++)
                Assert.Equal(Math.Clamp(MathF.Round(weights[i] / scale, MidpointRounding.ToEven), -127, 127), codes[i]);
            var qp = codes.Where(q => q > 0).OrderDescending().Take(2).Sum();
            var qn = codes.Where(q => q < 0).Select(q => -q).OrderDescending().Take(2).Sum();
            Assert.True(Math.Max(qp, qn) <= 128, $"two same-sign codes sum to {Math.Max(qp, qn)}");
        }
    }
}
