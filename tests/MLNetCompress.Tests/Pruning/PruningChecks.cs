using Google.Protobuf;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Pruning;

/// <summary>Helpers shared by the pruning and clustering tests, independent of the passes they check.</summary>
internal static class PruningChecks
{
    /// <summary>The float initializers of a serialized model by name.</summary>
    public static Dictionary<string, (long[] Dims, float[] Values)> Weights(byte[] model)
    {
        var proto = ModelProto.Parser.ParseFrom(model);
        return proto.Graph.Initializer.Where(t => t.DataType == (int)OnnxDataType.Float)
            .ToDictionary(t => t.Name, t => (t.Dims.ToArray(), TensorData.ToFloatArray(t)));
    }

    /// <summary>The model with some initializers replaced by the given values (encoded by the test helpers, not the library).</summary>
    public static byte[] WithWeights(byte[] model, IReadOnlyDictionary<string, float[]> replacements)
    {
        var proto = ModelProto.Parser.ParseFrom(model);
        for (int i = 0; i < proto.Graph.Initializer.Count; i++)
        {
            var t = proto.Graph.Initializer[i];
            if (replacements.TryGetValue(t.Name, out var v)) proto.Graph.Initializer[i] = TestTensors.Float(t.Name, t.Dims.ToArray(), v);
        }
        return proto.ToByteArray();
    }

    /// <summary>Runs both models in ONNX Runtime on the same deterministic input and asserts bit-equal outputs.</summary>
    public static void AssertSameOrtOutputs(byte[] expected, byte[] actual, string input, long[] shape, float tolerance = 0)
    {
        int n = (int)shape.Aggregate(1L, (a, b) => a * b);
        var inputs = new Dictionary<string, NamedTensor> { [input] = new NamedTensor(Gaussian(n, 11), shape) };
        var a = Run(expected, inputs);
        var b = Run(actual, inputs);
        Assert.Equal(a.Length, b.Length);
        for (int k = 0; k < a.Length; k++)
            for (int i = 0; i < a[k].Length; i++)
                Assert.True(MathF.Abs(a[k][i] - b[k][i]) <= tolerance, $"output {k}[{i}]: {a[k][i]} vs {b[k][i]}");
    }

    /// <summary>Accuracy of a model on the bundled 1,000-image Fashion-MNIST test subset.</summary>
    public static double SubsetAccuracy(byte[] model, string split = "test")
    {
        using var runner = ModelRunner.Load(model);
        var feed = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:{split}", runner.Session);
        var report = ModelComparer.Compare(model, model, feed, new EvalOptions { BatchSize = 250, WarmupRuns = 0, MinLatencySamples = 1 });
        return report.Outputs.Single(o => o.Name == "logits").CandidateAccuracy!.Value;
    }

    /// <summary>Probe rows from the bundled Fashion-MNIST subset, for verification on real images.</summary>
    public static IDataFeed SubsetFeed(string model, string split = "test")
    {
        using var runner = ModelRunner.Load(model);
        return DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:{split}", runner.Session);
    }

    /// <summary>
    /// Reference magnitude pruning by a full sort: the k = round(s·n) smallest |w| become 0, equal magnitudes in index order.
    /// </summary>
    public static float[] ReferencePrune(float[] w, double sparsity)
    {
        int k = (int)Math.Round(sparsity * w.Length);
        var order = Enumerable.Range(0, w.Length).OrderBy(i => Math.Abs(w[i])).ThenBy(i => i).Take(k);
        var r = (float[])w.Clone();
        foreach (int i in order) r[i] = 0;
        return r;
    }
}
