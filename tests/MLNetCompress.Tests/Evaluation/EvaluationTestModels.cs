using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Testing;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Tests.Evaluation;

/// <summary>The MLP of TestModels with its second weight optionally perturbed, plus a labelled in-memory feed.</summary>
internal static class EvaluationTestModels
{
    public const int In = 4, Hidden = 8, Out = 3;

    public static float[] W1 => TestTensors.RandomValues(In * Hidden, 1);
    public static float[] B1 => TestTensors.RandomValues(Hidden, 2);
    public static float[] B2 => TestTensors.RandomValues(Out, 4);

    public static float[] W2(float noise)
    {
        var w = TestTensors.RandomValues(Hidden * Out, 3);
        var n = TestTensors.RandomValues(Hidden * Out, 99);
        for (var i = 0; i < w.Length; i++) w[i] += noise * n[i];
        return w;
    }

    public static byte[] Mlp(float noise = 0, string inputName = "x") =>
        TestModels.Model()
            .Input(inputName, OnnxDataType.Float, "batch", In)
            .Initializer("W1", [In, Hidden], W1)
            .Initializer("b1", [Hidden], B1)
            .Initializer("W2", [Hidden, Out], W2(noise))
            .Initializer("b2", [Out], B2)
            .Node("MatMul", [inputName, "W1"], ["h0"])
            .Node("Add", ["h0", "b1"], ["h1"])
            .Node("Relu", ["h1"], ["h2"])
            .Node("MatMul", ["h2", "W2"], ["y0"])
            .Node("Add", ["y0", "b2"], ["y"])
            .Output("y", OnnxDataType.Float, "batch", Out)
            .ToBytes();

    /// <summary>The MLP in double: rows × Out.</summary>
    public static double[] Reference(float[] x, int rows, float noise)
    {
        float[] w1 = W1, b1 = B1, w2 = W2(noise), b2 = B2;
        var y = new double[rows * Out];
        var h = new double[Hidden];
        for (var r = 0; r < rows; r++)
        {
            for (var j = 0; j < Hidden; j++)
            {
                double s = b1[j];
                for (var i = 0; i < In; i++) s += (double)x[r * In + i] * w1[i * Hidden + j];
                h[j] = Math.Max(0, s);
            }
            for (var k = 0; k < Out; k++)
            {
                double s = b2[k];
                for (var j = 0; j < Hidden; j++) s += h[j] * w2[j * Out + k];
                y[r * Out + k] = s;
            }
        }
        return y;
    }
}

/// <summary>An in-memory labelled feed written against IDataFeed directly.</summary>
internal sealed class ArrayFeed(float[] x, int rows, int[] labels) : IDataFeed
{
    public string Description => $"array, {rows} rows";
    public long? Count => rows;
    public bool HasLabels => true;
    public IReadOnlyList<ModelInputInfo> Inputs { get; } = [new("x", TensorElementType.Float, [-1, EvaluationTestModels.In])];

    public IEnumerable<DataBatch> Batches(int batchSize, int? maxRows = null)
    {
        var total = Math.Min(rows, maxRows ?? rows);
        for (var start = 0; start < total; start += batchSize)
        {
            var n = Math.Min(batchSize, total - start);
            var data = x.AsSpan(start * EvaluationTestModels.In, n * EvaluationTestModels.In).ToArray();
            yield return new DataBatch(
                new Dictionary<string, NamedTensor> { ["x"] = new NamedTensor(data, [n, EvaluationTestModels.In]) },
                n, start, Enumerable.Range(start, n).Select(i => $"r{i}").ToArray(), labels[start..(start + n)]);
        }
    }
}
