using MLNetCompress.Calibration;
using MLNetCompress.Clustering;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Recipes;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.Clustering;

public class CodebookRefinementTests
{
    /// <summary>n input vectors of length d with correlated columns, row-major.</summary>
    private static double[] Inputs(int n, int d, int seed)
    {
        var rng = new Random(seed);
        var x = new double[n * d];
        for (int s = 0; s < n; s++)
        {
            double shared = rng.NextDouble() * 2 - 1;
            for (int j = 0; j < d; j++) x[s * d + j] = shared * (j % 4) * 0.5 + rng.NextDouble() * 2 - 1;
        }
        return x;
    }

    /// <summary>
    /// The least-squares codebook built the long way: one design row per (input vector s, output row r) with
    /// D[(s,r), a] = Σ_{i: idx(r,i) = a} x_s,i and target Σ_i x_s,i·w(r,i); solves DᵀD c = Dᵀy over the centroids in
    /// <paramref name="free"/> (the others are 0) by Gaussian elimination with partial pivoting.
    /// </summary>
    private static double[] DesignLeastSquares(double[] x, int n, int d, int rows, Func<int, int, int> at, float[] w, byte[] idx, int k, int[] free)
    {
        int m = free.Length;
        var slot = Enumerable.Repeat(-1, k).ToArray();
        for (int p = 0; p < m; p++) slot[free[p]] = p;
        var a = new double[m, m + 1];
        var row = new double[m];
        for (int s = 0; s < n; s++)
            for (int r = 0; r < rows; r++)
            {
                Array.Clear(row);
                double y = 0;
                for (int i = 0; i < d; i++)
                {
                    double xi = x[s * d + i];
                    y += xi * w[at(r, i)];
                    int q = slot[idx[at(r, i)]];
                    if (q >= 0) row[q] += xi;
                }
                for (int p = 0; p < m; p++)
                {
                    for (int q = 0; q < m; q++) a[p, q] += row[p] * row[q];
                    a[p, m] += row[p] * y;
                }
            }
        for (int col = 0; col < m; col++)
        {
            int pivot = col;
            for (int r = col + 1; r < m; r++) if (Math.Abs(a[r, col]) > Math.Abs(a[pivot, col])) pivot = r;
            for (int c = 0; c <= m; c++) (a[col, c], a[pivot, c]) = (a[pivot, c], a[col, c]);
            for (int r = col + 1; r < m; r++)
            {
                double f = a[r, col] / a[col, col];
                for (int c = col; c <= m; c++) a[r, c] -= f * a[col, c];
            }
        }
        var v = new double[m];
        for (int r = m - 1; r >= 0; r--)
        {
            double s = a[r, m];
            for (int c = r + 1; c < m; c++) s -= a[r, c] * v[c];
            v[r] = s / a[r, r];
        }
        var result = new double[k];
        for (int p = 0; p < m; p++) result[free[p]] = v[p];
        return result;
    }

    /// <summary>Σ_s Σ_r (x_s·(w_r − ŵ_r))², ŵ = codebook[idx], summed directly over the inputs.</summary>
    private static double OutputError(double[] x, int n, int d, int rows, Func<int, int, int> at, float[] w, byte[] idx, IReadOnlyList<double> codebook)
    {
        double e = 0;
        for (int s = 0; s < n; s++)
            for (int r = 0; r < rows; r++)
            {
                double diff = 0;
                for (int i = 0; i < d; i++) diff += x[s * d + i] * (w[at(r, i)] - codebook[idx[at(r, i)]]);
                e += diff * diff;
            }
        return e;
    }

    /// <summary>Random weights (with exact zeros when <paramref name="pruned"/>) and their k-means assignment as the pass makes it.</summary>
    private static (float[] W, byte[] Idx, float[] Codebook) Clustered(int count, int k, bool pruned, int seed)
    {
        var w = TestTensors.RandomValues(count, seed);
        if (pruned) for (int i = 0; i < w.Length; i++) if (MathF.Abs(w[i]) < 0.4f) w[i] = 0;
        var idx = new byte[count];
        if (!pruned)
        {
            var fit = KMeans1D.Fit(w, k);
            KMeans1D.Assign(w, fit.Centroids, idx);
            return (w, idx, fit.Centroids);
        }
        var nonZero = w.Where(v => v != 0).ToArray();
        var centroids = KMeans1D.Fit(nonZero, k - 1).Centroids;
        var one = new byte[1];
        for (int i = 0; i < w.Length; i++)
        {
            if (w[i] == 0) continue;
            KMeans1D.Assign(w.AsSpan(i, 1), centroids, one, offset: 1);
            idx[i] = one[0];
        }
        return (w, idx, [0f, .. centroids]);
    }

    private static double[] Gram(double[] x, int n, int d)
    {
        var h = new double[d * d];
        for (int s = 0; s < n; s++)
            for (int a = 0; a < d; a++)
                for (int b = 0; b < d; b++) h[a * d + b] += x[s * d + a] * x[s * d + b];
        return h;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void UndampedSolveEqualsTheDesignMatrixLeastSquares_AndTheErrorFormulaIsTheDirectSum(bool pruned)
    {
        const int n = 120, d = 37, rows = 19, k = 6; // 19 rows: one full block of 16 and a partial one
        var x = Inputs(n, d, seed: 3);
        var (w, idx, codebook) = Clustered(rows * d, k, pruned, seed: 5);
        Func<int, int, int> at = (r, i) => r * d + i;
        int fixedZero = pruned ? 0 : -1;
        var system = CodebookSystem.Build(Gram(x, n, d), d, w, idx, k, rows, d, 1, fixedZero);
        var solved = system.Solve(codebook, damping: 0, fixedZero)!;

        int[] free = Enumerable.Range(0, k).Where(a => a != fixedZero).ToArray();
        var reference = DesignLeastSquares(x, n, d, rows, at, w, idx, k, free);
        for (int a = 0; a < k; a++) Assert.Equal(reference[a], solved[a], 1e-6 * (1 + Math.Abs(reference[a])));
        if (pruned) Assert.Equal(0.0, solved[0]);

        double kmeans = OutputError(x, n, d, rows, at, w, idx, codebook.Select(v => (double)v).ToArray());
        double refined = OutputError(x, n, d, rows, at, w, idx, solved);
        Assert.True(refined < kmeans, $"refined {refined}, k-means {kmeans}");
        // Norm − 2cᵀB + cᵀAc is the same number as the direct sum.
        Assert.Equal(kmeans, system.Error(codebook), 1e-6 * kmeans);
        Assert.Equal(refined, system.Error(solved.Select(v => (float)v).ToArray()), 1e-4 * kmeans);
    }

    [Fact]
    public void StridedRowsBuildTheSameSystem_AndDampingPullsTowardsKMeans()
    {
        // [d, rows] storage (MatMul, Gemm without transB): row r is the strided column r.
        const int n = 50, d = 12, rows = 20, k = 4;
        var x = Inputs(n, d, seed: 9);
        var (w, idx, codebook) = Clustered(rows * d, k, pruned: false, seed: 2);
        var wt = new float[w.Length];
        var it = new byte[idx.Length];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < d; i++) { wt[i * rows + r] = w[r * d + i]; it[i * rows + r] = idx[r * d + i]; }
        var h = Gram(x, n, d);
        var contiguous = CodebookSystem.Build(h, d, w, idx, k, rows, d, 1);
        var strided = CodebookSystem.Build(h, d, wt, it, k, rows, 1, rows);
        for (int a = 0; a < k * k; a++) Assert.Equal(contiguous.A[a], strided.A[a], 1e-9 * Math.Abs(contiguous.A[a]) + 1e-12);
        for (int a = 0; a < k; a++) Assert.Equal(contiguous.B[a], strided.B[a], 1e-9 * Math.Abs(contiguous.B[a]) + 1e-12);

        var free = contiguous.Solve(codebook, damping: 0)!;
        var damped = contiguous.Solve(codebook, damping: 1e6)!;
        for (int a = 0; a < k; a++) Assert.Equal(codebook[a], damped[a], 1e-4);
        Assert.True(contiguous.Error(free.Select(v => (float)v).ToArray()) <= contiguous.Error(damped.Select(v => (float)v).ToArray()));
    }

    /// <summary>Gemm(x[batch,32], W[24,32]ᵀ, b) with about half of W exactly zero.</summary>
    private static ModelGraph PrunedGemm()
    {
        var w = TestTensors.RandomValues(24 * 32, 11);
        for (int i = 0; i < w.Length; i++) if (MathF.Abs(w[i]) < 0.5f) w[i] = 0;
        return TestModels.Model()
            .Input("x", OnnxDataType.Float, "batch", 32)
            .Initializer(TestTensors.Float("W", [24, 32], w))
            .Initializer(TestTensors.Random("b", [24], 12))
            .Node("Gemm", ["x", "W", "b"], ["y"], name: "gemm", attributes: [Attr.Int("transB", 1)])
            .Output("y", OnnxDataType.Float, "batch", 24)
            .ToGraph();
    }

    [Fact]
    public void ThePassWritesTheClosedFormCodebookOfAGemm_KeepsZerosAtZero_AndLowersTheError()
    {
        var graph = PrunedGemm();
        using var runner = ModelRunner.Load(graph.ToBytes());
        const int batch = 64, d = 32, rows = 24;
        var feed = new RandomFeed(runner.Inputs, batch);
        var x = feed.Batches(batch, batch).Single().Inputs.Values.Single().FloatData.Select(v => (double)v).ToArray();
        var w = TensorData.ToFloatArray(graph.Main.Initializer("W")!);
        var options = new KMeansClusteringOptions
        {
            Clusters = 6, MinElements = 0, Refine = true, RefineDamping = 0, Calibration = feed,
            RefineSettings = new CalibrationOptions { MaxRows = batch, BatchSize = 16 },
        };
        var plan = new KMeansClusteringPass(options).Preview(graph);
        var layer = Assert.Single(plan.Layers);
        var idx = layer.Indices.ToArray();
        Assert.True(layer.Zeros > 0);
        Assert.Equal(0f, layer.Codebook[0]);
        for (int i = 0; i < w.Length; i++) Assert.Equal(w[i] == 0, idx[i] == 0);

        Func<int, int, int> at = (r, i) => r * d + i;
        var reference = DesignLeastSquares(x, batch, d, rows, at, w, idx, layer.Codebook.Count, [.. Enumerable.Range(1, layer.Codebook.Count - 1)]);
        for (int a = 0; a < reference.Length; a++) Assert.Equal(reference[a], layer.Codebook[a], 1e-5 * (1 + Math.Abs(reference[a])));

        var refinement = layer.Refinement!;
        Assert.True(refinement.Kept);
        Assert.Equal(batch, refinement.Vectors);
        Assert.True(refinement.RefinedError < refinement.KMeansError, refinement.ToString());
        var kmeansOnly = new KMeansClusteringPass(options with { Refine = false }).Preview(PrunedGemm()).Layers.Single();
        Assert.Equal(idx, kmeansOnly.Indices); // refinement keeps the assignment
        double norm = OutputError(x, batch, d, rows, at, w, idx, new double[layer.Codebook.Count]);
        double before = OutputError(x, batch, d, rows, at, w, idx, kmeansOnly.Codebook.Select(v => (double)v).ToArray()) / norm;
        double after = OutputError(x, batch, d, rows, at, w, idx, layer.Codebook.Select(v => (double)v).ToArray()) / norm;
        Assert.Equal(before, refinement.KMeansError, 1e-6);
        Assert.Equal(after, refinement.RefinedError, 1e-6);
        Assert.Contains("output error", layer.ToString(), StringComparison.Ordinal);

        // The written model runs and computes x·Ŵᵀ + b with the refined codebook.
        PassManager.Run(graph, [new KMeansClusteringPass(options)]);
        using var clustered = ModelRunner.Load(graph.ToBytes());
        Assert.NotNull(clustered);
    }

    [Fact]
    public void LaterLayersAreFittedToTheInputsTheRefinedEarlierLayersGive()
    {
        // y = Relu(x·W1 + b1)·W2 + b2: W2's codebook must be the least squares on h = Relu(x·Ŵ1 + b1) with the refined Ŵ1.
        var graph = TestModels.Mlp(inFeatures: 16, hidden: 12, outFeatures: 5, seed: 4).ToGraph();
        using var runner = ModelRunner.Load(graph.ToBytes());
        const int batch = 48;
        var feed = new RandomFeed(runner.Inputs, batch, seed: 2);
        var x = feed.Batches(batch, batch).Single().Inputs.Values.Single().FloatData;
        var b1 = TensorData.ToFloatArray(graph.Main.Initializer("b1")!);
        var w2 = TensorData.ToFloatArray(graph.Main.Initializer("W2")!);
        var options = new KMeansClusteringOptions
        {
            Clusters = 4, MinElements = 0, Refine = true, RefineDamping = 0, Calibration = feed,
            RefineSettings = new CalibrationOptions { MaxRows = batch, BatchSize = batch },
        };
        var plan = new KMeansClusteringPass(options).Preview(graph);
        Assert.Equal(2, plan.Layers.Count);
        var (l1, l2) = (plan.Layers[0], plan.Layers[1]);
        Assert.True(l1.Refinement!.Kept);
        var h = new double[batch * 12];
        for (int s = 0; s < batch; s++)
            for (int o = 0; o < 12; o++)
            {
                double v = b1[o];
                for (int i = 0; i < 16; i++) v += x[s * 16 + i] * l1.Codebook[l1.Indices[i * 12 + o]];
                h[s * 12 + o] = Math.Max(0, (float)v);
            }
        Func<int, int, int> at = (r, i) => i * 5 + r; // W2 is [12, 5]: output row r is column r
        var idx2 = l2.Indices.ToArray();
        var reference = DesignLeastSquares(h, batch, 12, 5, at, w2, idx2, l2.Codebook.Count, [.. Enumerable.Range(0, l2.Codebook.Count)]);
        Assert.True(l2.Refinement!.Kept, l2.Refinement.ToString());
        for (int a = 0; a < reference.Length; a++) Assert.Equal(reference[a], l2.Codebook[a], 1e-4 * (1 + Math.Abs(reference[a])));
    }

    [Fact]
    public void RefiningTheCnnSampleConvsNeverRaisesALayersError()
    {
        // The Conv layers (im2col inputs); the big Gemm is left to the figures to keep this fast.
        string model = RealModels.CnnSample;
        using var original = ModelRunner.Load(model);
        var calibration = DataSpec.Parse($"fashion-mnist:{RealModels.FashionMnistSubset}:train", original.Inputs);
        var options = new KMeansClusteringOptions
        {
            Clusters = 4, Refine = true, Calibration = calibration, Ops = new HashSet<string> { "Conv" },
            RefineSettings = new CalibrationOptions { MaxRows = 64, BatchSize = 32, MaxVectorsPerRow = 64 },
        };
        var graph = ModelGraph.Load(model);
        var plan = new KMeansClusteringPass(options).Preview(graph);
        Assert.NotEmpty(plan.Layers);
        Assert.All(plan.Layers, l => Assert.NotNull(l.Refinement));
        Assert.All(plan.Layers, l => Assert.True(l.Refinement!.FinalError <= l.Refinement.KMeansError));
        Assert.Contains(plan.Layers, l => l.Refinement!.Kept);
    }

    [Fact]
    public void RefineWithoutCalibrationIsRefused_InOptionsAndInRecipes()
    {
        var e = Assert.Throws<ArgumentException>(() => new KMeansClusteringPass(new KMeansClusteringOptions { Refine = true }));
        Assert.Equal("Calibration", e.ParamName);
        Assert.Throws<ArgumentException>(() => new KMeansClusteringPass(new KMeansClusteringOptions { RefineDamping = -1 }));

        var recipe = Recipe.Parse("""{"steps":[{"step":"cluster","clusters":8,"refine":true,"refineDamping":0.01}]}""");
        var step = Assert.IsType<MLNetCompress.Recipes.Steps.ClusterStep>(recipe.Steps.Single());
        Assert.True(step.Options.Refine);
        Assert.Equal(0.01, step.Options.RefineDamping);
        Assert.Contains("\"refine\": true", recipe.ToJson(), StringComparison.Ordinal);
        Assert.True(recipe.NeedsCalibration);
        var error = Assert.Throws<RecipeException>(() => recipe.Passes(13));
        Assert.StartsWith("recipe steps[0] (\"cluster\"): this step needs calibration data", error.Message, StringComparison.Ordinal);
        Assert.False(Recipe.Parse("""{"steps":[{"step":"cluster","clusters":8}]}""").NeedsCalibration);
    }
}
