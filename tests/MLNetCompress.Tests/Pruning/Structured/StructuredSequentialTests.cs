using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Pruning.Structured;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using static MLNetCompress.Tests.Pruning.Structured.StructuredPruningPassTests;

namespace MLNetCompress.Tests.Pruning.Structured;

public class StructuredSequentialTests
{
    private const OnnxDataType F = OnnxDataType.Float;

    [Fact]
    public void Sequential_FitsTheLastConsumerToTheOriginalOutputs_FromThePrunedInputs_AndLeavesLessErrorThanOneShot()
    {
        // Two prunable groups in a row (conv1 → conv2, conv2 → conv3), all 1×1 so that re-fitting a consumer over its
        // input channels is an exact least-squares problem. conv3 writes the graph output and keeps its channels.
        var model = TestModels.Model()
            .Input("x", F, "batch", 4, 5, 5)
            .Initializer(TestTensors.Random("W1", [8, 4, 1, 1], 81))
            .Initializer(TestTensors.Random("B1", [8], 82))
            .Initializer(TestTensors.Random("W2", [8, 8, 1, 1], 83))
            .Initializer(TestTensors.Float("B2", [8], Enumerable.Repeat(1f, 8).ToArray())) // no channel of r2 is always 0
            .Initializer(TestTensors.Random("W3", [3, 8, 1, 1], 85))
            .Initializer(TestTensors.Random("B3", [3], 86))
            .Node("Conv", ["x", "W1", "B1"], ["c1"], "conv1", "", Attr.Ints("kernel_shape", 1, 1))
            .Node("Relu", ["c1"], ["r1"], "relu1", "")
            .Node("Conv", ["r1", "W2", "B2"], ["c2"], "conv2", "", Attr.Ints("kernel_shape", 1, 1))
            .Node("Relu", ["c2"], ["r2"], "relu2", "")
            .Node("Conv", ["r2", "W3", "B3"], ["y"], "conv3", "", Attr.Ints("kernel_shape", 1, 1))
            .Output("y", F, "batch", 3, 5, 5)
            .ToBytes();
        IDataFeed data;
        using (var probe = ModelRunner.Load(model)) data = new RandomFeed(probe.Inputs, 48, seed: 5);
        var options = new StructuredPruningOptions { Fraction = 3.0 / 8, KeepAtLeast = 1, Reconstruct = true, Calibration = data, Damping = 1e-7 };
        var (oneShot, oneShotPlan, _) = Prune(model, options);
        var (sequential, plan, _) = Prune(model, options with { Sequential = true });
        Assert.Equal(2, plan.Groups.Count);
        Assert.Equal(oneShotPlan.Groups.Select(g => g.Removed), plan.Groups.Select(g => g.Removed));
        Assert.Throws<ArgumentException>(() => new StructuredPruningPass(new StructuredPruningOptions { Fraction = 0.3, Sequential = true, Calibration = data }));

        // Independent reference: ordinary least squares (normal equations with an intercept, solved here by Gauss–Jordan)
        // of the original y on the pruned model's conv3 input.
        var reference = Values(ModelGraph.FromBytes(model), data, "y");
        var inputs = Values(sequential, data, "r2");
        int k = 5, rows = inputs.Count;
        var normal = new double[k + 1, k + 1 + 3];
        for (int m = 0; m < rows; m++)
        {
            var z = inputs[m].Append(1f).ToArray();
            for (int i = 0; i <= k; i++)
            {
                for (int j = 0; j <= k; j++) normal[i, j] += z[i] * z[j];
                for (int o = 0; o < 3; o++) normal[i, k + 1 + o] += z[i] * reference[m][o];
            }
        }
        var solution = SolveAugmented(normal, k + 1, 3); // [k+1, 3]: weights then bias per output
        var conv3 = sequential.Main.Nodes.Single(n => n.Name == "conv3");
        var w3 = TensorData.ToFloatArray(GraphEdits.Constant(sequential.Main, conv3.Input[1])!);
        var b3 = TensorData.ToFloatArray(GraphEdits.Constant(sequential.Main, conv3.Input[2])!);
        Assert.Equal(3 * k, w3.Length);
        var expected = Enumerable.Range(0, 3).SelectMany(o => Enumerable.Range(0, k + 1).Select(i => solution[i, o])).ToArray();
        var actual = Enumerable.Range(0, 3).SelectMany(o => Enumerable.Range(0, k).Select(i => (double)w3[o * k + i]).Append(b3[o])).ToArray();
        Assert.True(expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max() < 2e-3, $"expected {string.Join(",", expected.Select(v => v.ToString("G4")))} got {string.Join(",", actual.Select(v => v.ToString("G4")))}");

        double seqError = SquaredError(reference, Values(sequential, data, "y"));
        double oneShotError = SquaredError(reference, Values(oneShot, data, "y"));
        Assert.True(seqError < 0.9 * oneShotError, $"sequential error {seqError:G4} vs one-shot {oneShotError:G4}");
    }

    /// <summary>Every position's channel vector of <paramref name="value"/> over the feed (each row's H·W positions).</summary>
    private static List<float[]> Values(ModelGraph graph, IDataFeed feed, string value)
    {
        var copy = graph.Clone();
        if (!copy.Main.IsGraphOutput(value)) copy.Main.Proto.Output.Add(new ValueInfoProto { Name = value });
        using var runner = ModelRunner.Load(copy.ToBytes(), outputNames: [value]);
        var result = new List<float[]>();
        foreach (var batch in feed.Batches(16))
        {
            var t = runner.Run(batch)[value];
            int n = (int)t.Shape[0], c = (int)t.Shape[1], hw = (int)(t.Shape[2] * t.Shape[3]);
            var data = t.Data.ToArray();
            for (int r = 0; r < n; r++)
                for (int p = 0; p < hw; p++)
                {
                    var v = new float[c];
                    for (int ch = 0; ch < c; ch++) v[ch] = data[(r * c + ch) * hw + p];
                    result.Add(v);
                }
        }
        return result;
    }

    private static double SquaredError(List<float[]> a, List<float[]> b) =>
        a.Zip(b, (p, q) => p.Zip(q, (x, y) => (double)(x - y) * (x - y)).Sum()).Sum();

    /// <summary>Gauss–Jordan with partial pivoting on [A | B]; returns X with A·X = B.</summary>
    private static double[,] SolveAugmented(double[,] m, int n, int rhs)
    {
        for (int col = 0; col < n; col++)
        {
            int pivot = Enumerable.Range(col, n - col).MaxBy(r => Math.Abs(m[r, col]));
            for (int j = 0; j < n + rhs; j++) (m[col, j], m[pivot, j]) = (m[pivot, j], m[col, j]);
            for (int r = 0; r < n; r++)
            {
                if (r == col) continue;
                double f = m[r, col] / m[col, col];
                for (int j = 0; j < n + rhs; j++) m[r, j] -= f * m[col, j];
            }
        }
        var x = new double[n, rhs];
        for (int i = 0; i < n; i++)
            for (int o = 0; o < rhs; o++) x[i, o] = m[i, n + o] / m[i, i];
        return x;
    }
}
