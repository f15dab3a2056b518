using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Pruning;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.Pruning;

public class ReconstructionTests
{
    /// <summary>Random X (n×d, correlated columns), W (rows×d) stored as [rows, d], pruned to half by magnitude.</summary>
    private static (double[] X, float[] W, float[] Pruned) Layer(int n, int d, int rows, int seed)
    {
        var rng = new Random(seed);
        var x = new double[n * d];
        for (int i = 0; i < n; i++)
        {
            double shared = rng.NextDouble() * 2 - 1;
            for (int j = 0; j < d; j++) x[i * d + j] = shared * (j % 3) + rng.NextDouble() * 2 - 1;
        }
        var w = new float[rows * d];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1);
        var pruned = (float[])w.Clone();
        for (int r = 0; r < rows; r++)
        {
            var order = Enumerable.Range(0, d).OrderBy(j => MathF.Abs(w[r * d + j])).Take(d / 2);
            foreach (int j in order) pruned[r * d + j] = 0;
        }
        return (x, w, pruned);
    }

    /// <summary>Least squares min ‖X_S v − X w‖ by Gaussian elimination with partial pivoting on X_SᵀX_S built from X itself.</summary>
    private static double[] LeastSquaresReference(double[] x, int n, int d, ReadOnlySpan<float> w, int[] kept)
    {
        int k = kept.Length;
        var a = new double[k, k + 1];
        for (int i = 0; i < n; i++)
        {
            double y = 0;
            for (int j = 0; j < d; j++) y += x[i * d + j] * w[j];
            for (int p = 0; p < k; p++)
            {
                double xp = x[i * d + kept[p]];
                for (int q = 0; q < k; q++) a[p, q] += xp * x[i * d + kept[q]];
                a[p, k] += xp * y;
            }
        }
        for (int col = 0; col < k; col++)
        {
            int pivot = col;
            for (int r = col + 1; r < k; r++) if (Math.Abs(a[r, col]) > Math.Abs(a[pivot, col])) pivot = r;
            for (int c = 0; c <= k; c++) (a[col, c], a[pivot, c]) = (a[pivot, c], a[col, c]);
            for (int r = col + 1; r < k; r++)
            {
                double f = a[r, col] / a[col, col];
                for (int c = col; c <= k; c++) a[r, c] -= f * a[col, c];
            }
        }
        var v = new double[k];
        for (int r = k - 1; r >= 0; r--)
        {
            double s = a[r, k];
            for (int c = r + 1; c < k; c++) s -= a[r, c] * v[c];
            v[r] = s / a[r, r];
        }
        return v;
    }

    private static double OutputError(double[] x, int n, int d, ReadOnlySpan<float> w, ReadOnlySpan<float> fit)
    {
        double e = 0;
        for (int i = 0; i < n; i++)
        {
            double diff = 0;
            for (int j = 0; j < d; j++) diff += x[i * d + j] * (w[j] - fit[j]);
            e += diff * diff;
        }
        return e;
    }

    [Fact]
    public void UndampedRefitEqualsTheLeastSquaresSolutionAndBeatsMagnitude()
    {
        const int n = 200, d = 24, rows = 5;
        var (x, w, pruned) = Layer(n, d, rows, seed: 7);
        var h = new double[d * d];
        for (int i = 0; i < n; i++)
            for (int a = 0; a < d; a++)
                for (int b = 0; b < d; b++) h[a * d + b] += x[i * d + a] * x[i * d + b];
        var magnitude = (float[])pruned.Clone();
        var (before, after) = ReconstructionSolver.Refit(h, d, w, pruned, rows, d, 1, damping: 0);
        Assert.True(after < before, $"relative error {after} after, {before} before");

        for (int r = 0; r < rows; r++)
        {
            var wr = w.AsSpan(r * d, d);
            int[] kept = Enumerable.Range(0, d).Where(j => magnitude[r * d + j] != 0).ToArray();
            var reference = LeastSquaresReference(x, n, d, wr, kept);
            for (int p = 0; p < kept.Length; p++)
                Assert.Equal(reference[p], pruned[r * d + kept[p]], 1e-4);
            for (int j = 0; j < d; j++)
                if (magnitude[r * d + j] == 0) Assert.Equal(0f, pruned[r * d + j]);
            Assert.True(OutputError(x, n, d, wr, pruned.AsSpan(r * d, d)) <= OutputError(x, n, d, wr, magnitude.AsSpan(r * d, d)) + 1e-9);
        }
    }

    [Fact]
    public void StridedRowsAndDampingGiveTheSameFitAsContiguousRows()
    {
        // The [d, rows] layout of Gemm without transB and MatMul must fit exactly as its transpose does.
        const int n = 60, d = 10, rows = 4;
        var (x, w, pruned) = Layer(n, d, rows, seed: 3);
        var h = new double[d * d];
        for (int i = 0; i < n; i++)
            for (int a = 0; a < d; a++)
                for (int b = 0; b < d; b++) h[a * d + b] += x[i * d + a] * x[i * d + b];
        var wt = new float[w.Length];
        var pt = new float[w.Length];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < d; j++) { wt[j * rows + r] = w[r * d + j]; pt[j * rows + r] = pruned[r * d + j]; }
        ReconstructionSolver.Refit(h, d, w, pruned, rows, d, 1, damping: 0.05);
        ReconstructionSolver.Refit(h, d, wt, pt, rows, 1, rows, damping: 0.05);
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < d; j++) Assert.Equal(pruned[r * d + j], pt[j * rows + r]);
    }

    [Fact]
    public void CholeskySolvesAKnownSystem()
    {
        double[] a = [4, 2, 0.4, 2, 5, 1, 0.4, 1, 3];
        double[] x = [1, -2, 0.5];
        var b = new double[3];
        for (int i = 0; i < 3; i++) for (int j = 0; j < 3; j++) b[i] += a[i * 3 + j] * x[j];
        Assert.True(Cholesky.Factor(a, 3));
        Cholesky.Solve(a, 3, b);
        for (int i = 0; i < 3; i++) Assert.Equal(x[i], b[i], 12);
        Assert.False(Cholesky.Factor(new double[] { 1, 2, 2, 1 }, 2));
    }

    [Fact]
    public void ConvAndMatMulLayersAreFittedOnTheirRealInputs()
    {
        // A strided, asymmetrically padded Conv: the reference builds its im2col patches by its own indexing.
        const int batch = 64, c = 3, size = 6, m = 4, k = 3, stride = 2;
        long[] pads = [1, 1, 0, 1]; // top, left, bottom, right
        var conv = TestModels.Model()
            .Input("x", OnnxDataType.Float, "batch", c, size, size)
            .Initializer(TestTensors.Random("W", [m, c, k, k], 5))
            .Node("Conv", ["x", "W"], ["y"], name: "conv", attributes: [Attr.Ints("strides", stride, stride), Attr.Ints("pads", pads)])
            .Output("y", OnnxDataType.Float, "batch", m, 3, 3)
            .ToGraph();
        var (fitted, original, mask, x) = RunPass(conv, "W", batch);
        int d = c * k * k, outH = (size + 1 - k) / stride + 1, outW = (size + 2 - k) / stride + 1;
        var patches = new List<double[]>();
        for (int n = 0; n < batch; n++)
            for (int oy = 0; oy < outH; oy++)
                for (int ox = 0; ox < outW; ox++)
                {
                    var p = new double[d];
                    for (int ch = 0; ch < c; ch++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++)
                            {
                                int y = oy * stride + ky - 1, xx = ox * stride + kx - 1;
                                p[(ch * k + ky) * k + kx] = y is >= 0 and < size && xx is >= 0 and < size ? x[((n * c + ch) * size + y) * size + xx] : 0;
                            }
                    patches.Add(p);
                }
        AssertRowsMatchReference([.. patches.SelectMany(p => p)], patches.Count, d, m, original, mask, fitted, r => (r * d, 1));

        // MatMul with W [in, out]: rows are the strided columns.
        var mlp = TestModels.Mlp(inFeatures: 16, hidden: 6, outFeatures: 3, seed: 2).ToGraph();
        var (w1, o1, m1, x1) = RunPass(mlp, "W1", batch);
        AssertRowsMatchReference([.. x1.Select(v => (double)v)], batch, 16, 6, o1, m1, w1, r => (r, 6));
    }

    /// <summary>Prunes half of every weight, re-fits with no damping on a random feed, and returns the fitted, original and
    /// magnitude-pruned values of <paramref name="weight"/> and the feed's inputs.</summary>
    private static (float[] Fitted, float[] Original, float[] Mask, float[] X) RunPass(ModelGraph graph, string weight, int rows)
    {
        using var runner = ModelRunner.Load(graph.ToBytes());
        var feed = new RandomFeed(runner.Inputs, rows);
        var x = feed.Batches(rows, rows).Single().Inputs.Values.Single().FloatData;
        var pruning = new PruningOptions { Sparsity = 0.5, MinElements = 0 };
        var original = PruningChecks.Weights(graph.ToBytes())[weight].Values;
        var magnitude = graph.Clone();
        PassManager.Run(magnitude, [new MagnitudePruningPass(pruning)]);
        var pass = new ReconstructionPass(new ReconstructionOptions
        {
            Pruning = pruning,
            Calibration = feed,
            Damping = 0,
            CalibrationSettings = new CalibrationOptions { MaxRows = rows, BatchSize = rows },
        });
        PassManager.Run(graph, [pass]);
        return (PruningChecks.Weights(graph.ToBytes())[weight].Values, original, PruningChecks.Weights(magnitude.ToBytes())[weight].Values, x);
    }

    private static void AssertRowsMatchReference(double[] x, int n, int d, int rows, float[] original, float[] mask, float[] fitted, Func<int, (int Start, int Step)> layout)
    {
        for (int r = 0; r < rows; r++)
        {
            var (start, step) = layout(r);
            var w = Enumerable.Range(0, d).Select(i => original[start + i * step]).ToArray();
            int[] kept = Enumerable.Range(0, d).Where(i => mask[start + i * step] != 0).ToArray();
            var reference = LeastSquaresReference(x, n, d, w, kept);
            for (int p = 0; p < kept.Length; p++)
                Assert.Equal(reference[p], fitted[start + kept[p] * step], 1e-3);
            for (int i = 0; i < d; i++)
                if (mask[start + i * step] == 0) Assert.Equal(0f, fitted[start + i * step]);
        }
    }

    [Fact]
    public void LayersThatCannotBeRefittedKeepTheMagnitudeResultWithANote()
    {
        // W is read by two MatMuls: one fit cannot serve both inputs, so it stays as magnitude pruning left it.
        var graph = TestModels.Model()
            .Input("x", OnnxDataType.Float, "batch", 8)
            .Initializer(TestTensors.Random("W", [8, 8], 4))
            .Node("MatMul", ["x", "W"], ["h"], name: "a")
            .Node("MatMul", ["h", "W"], ["y"], name: "b")
            .Output("y", OnnxDataType.Float, "batch", 8)
            .ToGraph();
        using var runner = ModelRunner.Load(graph.ToBytes());
        var pruning = new PruningOptions { Sparsity = 0.5, MinElements = 0 };
        var magnitude = graph.Clone();
        PassManager.Run(magnitude, [new MagnitudePruningPass(pruning)]);
        var plan = new ReconstructionPass(new ReconstructionOptions { Pruning = pruning, Calibration = new RandomFeed(runner.Inputs, 16) }).Preview(graph);
        Assert.Empty(plan.Layers);
        Assert.Contains(plan.Notes, n => n.StartsWith("W (MatMul)", StringComparison.Ordinal) && n.Contains("more than one node", StringComparison.Ordinal));
        PassManager.Run(graph, [new ReconstructionPass(new ReconstructionOptions { Pruning = pruning, Calibration = new RandomFeed(runner.Inputs, 16) })]);
        Assert.Equal(PruningChecks.Weights(magnitude.ToBytes())["W"].Values, PruningChecks.Weights(graph.ToBytes())["W"].Values);
    }

    [Fact]
    public void OptionsAreValidated()
    {
        using var runner = ModelRunner.Load(TestModels.Mlp().ToBytes());
        var feed = new RandomFeed(runner.Inputs, 4);
        Assert.Throws<ArgumentException>(() => new ReconstructionPass(new ReconstructionOptions { Pruning = new PruningOptions { Sparsity = 0.5 }, Calibration = feed, Damping = -1 }));
        Assert.Throws<ArgumentException>(() => new ReconstructionPass(new ReconstructionOptions { Pruning = new PruningOptions(), Calibration = feed }));
    }

    [Fact]
    public void ReconstructionBeatsMagnitudePruningOnTheCnnSample()
    {
        string model = RealModels.CnnSample;
        using var original = ModelRunner.Load(model);
        var calibration = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:train", original.Inputs);
        var pruning = new PruningOptions { Sparsity = 0.9 };
        var graph = ModelGraph.Load(model);
        var magnitudeGraph = graph.Clone();
        PassManager.Run(magnitudeGraph, [new MagnitudePruningPass(pruning)]);
        var pass = new ReconstructionPass(new ReconstructionOptions
        {
            Pruning = pruning,
            Calibration = calibration,
            CalibrationSettings = new CalibrationOptions { MaxRows = 500, BatchSize = 100, MaxVectorsPerRow = 16 },
        });
        var results = PassManager.Run(graph, [pass]);
        Assert.True(results[0].Modified);

        // Same mask: the zeros are exactly where magnitude pruning put them.
        var a = PruningChecks.Weights(magnitudeGraph.ToBytes());
        var b = PruningChecks.Weights(graph.ToBytes());
        foreach (var (name, (_, values)) in a)
            for (int i = 0; i < values.Length; i++) Assert.Equal(values[i] == 0, b[name].Values[i] == 0);

        double magnitude = PruningChecks.SubsetAccuracy(magnitudeGraph.ToBytes());
        double reconstructed = PruningChecks.SubsetAccuracy(graph.ToBytes());
        Assert.True(reconstructed > magnitude + 0.05, $"reconstruction {reconstructed:P1}, magnitude {magnitude:P1} at 90% per layer");
    }
}
