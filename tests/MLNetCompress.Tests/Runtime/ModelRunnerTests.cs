using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Tests.Runtime;

public class ModelRunnerTests
{
    /// <summary>y = Relu(x·W1 + b1)·W2 + b2 in double, from the same deterministic weights as TestModels.Mlp.</summary>
    internal static double[] MlpReference(float[] x, int rows, int seed = 1, int inF = 4, int hidden = 8, int outF = 3)
    {
        var w1 = TestTensors.RandomValues(inF * hidden, seed);
        var b1 = TestTensors.RandomValues(hidden, seed + 1);
        var w2 = TestTensors.RandomValues(hidden * outF, seed + 2);
        var b2 = TestTensors.RandomValues(outF, seed + 3);
        var y = new double[rows * outF];
        for (var r = 0; r < rows; r++)
        {
            var h = new double[hidden];
            for (var j = 0; j < hidden; j++)
            {
                double s = b1[j];
                for (var i = 0; i < inF; i++) s += x[r * inF + i] * (double)w1[i * hidden + j];
                h[j] = Math.Max(0, s);
            }
            for (var k = 0; k < outF; k++)
            {
                double s = b2[k];
                for (var j = 0; j < hidden; j++) s += h[j] * w2[j * outF + k];
                y[r * outF + k] = s;
            }
        }
        return y;
    }

    [Fact]
    public void Run_MatchesAnIndependentReference_AndReusesBuffers()
    {
        using var runner = ModelRunner.Load(TestModels.Mlp().ToBytes());
        Assert.Equal(["y"], runner.OutputNames);
        Assert.Equal([-1L, 4], runner.Inputs.Single().Dims);
        var x = TestTensors.RandomValues(5 * 4, 42);
        var outputs = runner.Run(new Dictionary<string, NamedTensor> { ["x"] = new NamedTensor(x, [5, 4]) });
        var y = outputs["y"];
        Assert.Equal([5L, 3], y.Shape);
        Assert.Equal(5, y.Rows);
        Assert.Equal(3, y.RowLength);
        var expected = MlpReference(x, 5);
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], y.Data[i], 5);
        Assert.True(outputs.ElapsedMilliseconds > 0);

        var again = runner.Run(new Dictionary<string, NamedTensor> { ["x"] = new NamedTensor(x[..8], [2, 4]) });
        Assert.Same(outputs, again);
        Assert.Equal(2, again["y"].Rows);
        Assert.Equal(expected[3], again["y"].Row(1)[0], 5);
    }

    [Fact]
    public void Int64Outputs_AreGivenAsFloats()
    {
        var model = TestModels.Model()
            .Input("ids", OnnxDataType.Int64, "batch", 3)
            .Node("Identity", ["ids"], ["same"])
            .Node("Cast", ["ids"], ["d"], Attr.Int("to", (long)OnnxDataType.Double))
            .Output("same", OnnxDataType.Int64, "batch", 3)
            .Output("d", OnnxDataType.Double, "batch", 3)
            .ToBytes();
        using var runner = ModelRunner.Load(model);
        var outputs = runner.Run(new Dictionary<string, NamedTensor> { ["ids"] = new NamedTensor(new long[] { 1, -2, 300000, 4, 5, 6 }, [2, 3]) });
        Assert.Equal(TensorElementType.Int64, outputs["same"].SourceType);
        Assert.Equal([1f, -2f, 300000f, 4f, 5f, 6f], outputs["same"].Data.ToArray());
        Assert.Equal([1f, -2f, 300000f, 4f, 5f, 6f], outputs["d"].Data.ToArray());
    }

    [Fact]
    public void WrongInputs_AreClearArgumentErrors()
    {
        using var runner = ModelRunner.Load(TestModels.Mlp().ToBytes());
        var e = Assert.Throws<ArgumentException>(() => runner.Run(new Dictionary<string, NamedTensor> { ["x"] = new NamedTensor(new long[4], [1, 4]) }));
        Assert.StartsWith("model input 'x' wants Float but the tensor is Int64", e.Message);
        e = Assert.Throws<ArgumentException>(() => runner.Run(new Dictionary<string, NamedTensor> { ["z"] = new NamedTensor(new float[4], [1, 4]) }));
        Assert.StartsWith("no tensor for model input 'x'", e.Message);
        var both = new Dictionary<string, NamedTensor> { ["x"] = new NamedTensor(new float[4], [1, 4]), ["z"] = new NamedTensor(new float[4], [1, 4]) };
        e = Assert.Throws<ArgumentException>(() => runner.Run(both));
        Assert.StartsWith("the model has no input 'z'", e.Message);
    }

    [Fact]
    public void NotAModel_FailsToLoadWithOneLine()
    {
        var e = Assert.Throws<OrtRuntimeException>(() => ModelRunner.Load("this is not a model"u8.ToArray()));
        Assert.StartsWith("the model (19 bytes) does not load in ONNX Runtime: ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void OptimizedModelPath_IsWritten()
    {
        var path = Path.Combine(RealModels.TempDir("opt"), "optimized.onnx");
        using var session = OrtSessionFactory.Create(TestModels.Mlp().ToBytes(), new RuntimeOptions(OptimizedModelPath: path, GraphOptimizationLevel: GraphOptimizationLevel.ORT_ENABLE_BASIC));
        Assert.True(new FileInfo(path).Length > 0);
    }
}
