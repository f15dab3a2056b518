using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.NBits;
using MLNetCompress.Testing;
using Xunit.Abstractions;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Quantization.NBits;

/// <summary>GPTQ against round to nearest on inputs whose features are correlated, measured as the output error
/// ‖X·W − X·Ŵ‖ it is meant to reduce; and the inverse-Hessian factor it reads.</summary>
public class GptqTests(ITestOutputHelper output)
{
    /// <summary>Rows of correlated features: x = z·M + 0.5 with z Gaussian (seeded by <paramref name="seed"/>) and M a
    /// random mixing matrix (seeded by <paramref name="mixSeed"/>: the same M gives the same distribution).</summary>
    private static float[] CorrelatedInputs(int rows, int k, int seed, int mixSeed = 1000)
    {
        var z = Gaussian(rows * k, seed);
        var mix = Gaussian(k * k, mixSeed, 1f / MathF.Sqrt(k));
        var x = new float[rows * k];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < k; c++)
            {
                float s = 0.5f;
                for (int j = 0; j < k; j++) s += z[r * k + j] * mix[j * k + c];
                x[r * k + c] = s;
            }
        return x;
    }

    private static double[] SecondMoment(float[] x, int rows, int k)
    {
        var cov = new RunningCovariance(k);
        cov.AddTensor(x, [rows, k], 1);
        return cov.SecondMoment();
    }

    private static double OutputError(float[] x, float[] w, float[] wq, int rows, int k, int n)
    {
        var diff = new float[w.Length];
        for (int i = 0; i < w.Length; i++) diff[i] = w[i] - wq[i];
        var y = MatMulNBitsPassTests.MatMul(x, diff, rows, k, n);
        return Math.Sqrt(y.Sum(v => (double)v * v));
    }

    [Theory]
    [InlineData(32, false)]
    [InlineData(64, true)]
    [InlineData(128, false)]
    public void Gptq_HasLessOutputErrorThanRoundToNearest(int blockSize, bool symmetric)
    {
        const int rows = 512, k = 128, n = 48;
        var x = CorrelatedInputs(rows, k, 21);
        var w = Gaussian(k * n, 22, 0.1f);
        var h = SecondMoment(x, rows, k);
        var rtn = BlockQuantizer.RoundToNearest(w, k, n, 4, blockSize, symmetric);
        var gptq = GptqSolver.Quantize(w, h, k, n, 4, blockSize, symmetric, 0.01);
        Assert.NotNull(gptq);
        // Held-out rows from the same distribution, so the gain is not fitted to the calibration rows only.
        var test = CorrelatedInputs(rows, k, 21 + 100);
        double eRtn = OutputError(test, w, rtn.Dequantize(), rows, k, n), eGptq = OutputError(test, w, gptq.Dequantize(), rows, k, n);
        output.WriteLine($"block {blockSize}, symmetric {symmetric}: ‖XW − XŴ‖ RTN {eRtn:G4}, GPTQ {eGptq:G4} ({eGptq / eRtn:P1})");
        Assert.True(eGptq < 0.9 * eRtn, $"GPTQ {eGptq} vs RTN {eRtn}");
        // The stored values stay in range and the weights are still close element by element.
        Assert.All(gptq.Values, v => Assert.InRange(v, 0, 15));
        Assert.True(gptq.MaxAbsError < 0.5, $"max abs error {gptq.MaxAbsError}");
    }

    [Fact]
    public void UpperCholeskyOfInverse_TimesH_IsTheIdentity()
    {
        const int k = 40;
        var x = CorrelatedInputs(200, k, 5);
        var h = SecondMoment(x, 200, k);
        for (int i = 0; i < k; i++) h[i * k + i] += 0.01;
        var u = InverseHessian.UpperCholeskyOfInverse(h, k);
        Assert.NotNull(u);
        double worst = 0;
        for (int i = 0; i < k; i++)
        {
            for (int j = 0; j < i; j++) Assert.Equal(0, u[i * k + j]);
            Assert.True(u[i * k + i] > 0);
            for (int j = 0; j < k; j++)
            {
                // (UᵀU·H)[i,j]
                double s = 0;
                for (int m = 0; m < k; m++)
                {
                    double inv = 0;
                    for (int p = 0; p < k; p++) inv += u[p * k + i] * u[p * k + m];
                    s += inv * h[m * k + j];
                }
                worst = Math.Max(worst, Math.Abs(s - (i == j ? 1 : 0)));
            }
        }
        Assert.True(worst < 1e-8, $"max |UᵀUH − I| = {worst}");
        Assert.Null(InverseHessian.UpperCholeskyOfInverse(new double[] { 1, 2, 2, 1 }, 2));
    }

    [Fact]
    public void Pass_Gptq_UsesTheCalibrationInputs_AndBeatsRoundToNearestInOrt()
    {
        // More calibration rows than features, so XᵀX has full rank (as with a real layer's many tokens).
        const int k = 128, n = 32, rows = 512;
        var x = CorrelatedInputs(rows, k, 31);
        var model = TestModels.Model()
            .Input("x", OnnxDataType.Float, "N", k)
            .Initializer(TestTensors.Float("W", [k, n], Gaussian(k * n, 32, 0.1f)))
            .Node("MatMul", ["x", "W"], ["y"], "mm")
            .Output("y", OnnxDataType.Float, "N", n)
            .ToBytes();
        var feed = new Rows(x, rows, k);
        var gptq = ModelGraph.FromBytes(model);
        var result = PassManager.Run(gptq, [new MatMulNBitsPass(new()
        {
            Algorithm = NBitsAlgorithm.Gptq, Calibration = feed, AccuracyLevel = 0,
            CalibrationSettings = new CalibrationOptions { MaxRows = rows, BatchSize = 64 },
        })])[0];
        Assert.True(result.Modified);
        Assert.Contains(result.Changes, c => c.Contains("GPTQ", StringComparison.Ordinal));
        var rtn = ModelGraph.FromBytes(model);
        PassManager.Run(rtn, [new MatMulNBitsPass(new() { AccuracyLevel = 0 })]);

        var test = CorrelatedInputs(rows, k, 31 + 7);
        var inputs = new Dictionary<string, NamedTensor> { ["x"] = new NamedTensor(test, [rows, k]) };
        var y = Run(model, inputs)[0];
        double Error(ModelGraph g)
        {
            var yq = Run(g.ToBytes(), inputs)[0];
            return Math.Sqrt(y.Select((v, i) => (double)(v - yq[i]) * (v - yq[i])).Sum());
        }
        double eRtn = Error(rtn), eGptq = Error(gptq);
        output.WriteLine($"ORT output error: RTN {eRtn:G4}, GPTQ {eGptq:G4}");
        Assert.True(eGptq < 0.9 * eRtn, $"GPTQ {eGptq} vs RTN {eRtn}");
    }

    /// <summary>Rows of a float matrix as a feed for input "x".</summary>
    private sealed class Rows(float[] data, int rows, int cols) : DataFeed([new ModelInputInfo("x", Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float, [-1, cols])])
    {
        public override string Description => "test rows";
        public override long RowCount => rows;
        public override bool HasLabels => false;

        protected override DataBatch CreateBatch(long start, int count) =>
            new(new Dictionary<string, NamedTensor> { ["x"] = new NamedTensor(data.AsSpan((int)start * cols, count * cols).ToArray(), [count, cols]) },
                count, start, RowIds("row", start, count));
    }
}
