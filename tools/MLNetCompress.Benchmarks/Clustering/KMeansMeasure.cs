using System.Diagnostics;
using System.Globalization;
using MLNetCompress.Benchmarks.Board;
using MLNetCompress.Clustering;
using MLNetCompress.Onnx;

namespace MLNetCompress.Benchmarks.Clustering;

/// <summary>
/// <c>kmeans [--clusters K] [--runs N] [--seeds S] [--max-iterations M] [--no-reference]</c>: 1-D k-means of ResNet18's largest weight tensor (the
/// 512×512×3×3 conv of layer4, 2.36M values) into K clusters (256). Times <see cref="KMeans1D.Fit"/> (median of N
/// runs after a warm-up) and compares its sum of squared errors with an independent textbook reference written here:
/// k-means++ seeding by D² sampling over every value, then Lloyd's iterations (each value assigned to its nearest
/// centroid by binary search over the sorted centroids' midpoints) until no assignment changes.
/// </summary>
public static class KMeansMeasure
{
    /// <summary>Entry point.</summary>
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        int k = 256, runs = 5, seeds = 1, maxIterations = 10_000;
        bool reference = true;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--clusters": k = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--runs": runs = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--seeds": seeds = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--max-iterations": maxIterations = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--no-reference": reference = false; break;
                default:
                    Console.Error.WriteLine($"error: unknown kmeans option '{args[i]}'; use --clusters K, --runs N, --seeds S, --max-iterations M (KMeans1D's), --no-reference.");
                    return 2;
            }
        }
        var graph = ModelGraph.Load(BoardModels.All["resnet18"]("").Path);
        var tensor = graph.Constants.Where(c => c.DataType == OnnxDataType.Float).MaxBy(c => c.ElementCount)!;
        float[] weights = tensor.ToFloats();
        Console.WriteLine($"tensor {tensor.Name} [{string.Join('x', tensor.Dims)}] = {weights.Length:N0} values, k = {k}");

        Console.WriteLine("| method | seed | time (s) | iterations | converged | SSE | SSE / reference |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        for (int seed = 1; seed <= seeds; seed++)
        {
            var sw = Stopwatch.StartNew();
            double refSse = double.NaN;
            if (reference)
            {
                // Slow on purpose (textbook, O(n log K) per iteration, often 1000+ iterations): minutes per seed.
                var (refCentroids, refIterations, refConverged) = ReferenceLloyd(weights, k, seed, maxIterations: 5000);
                double refTime = sw.Elapsed.TotalSeconds;
                refSse = Sse(weights, refCentroids);
                Console.WriteLine($"| reference k-means++ Lloyd | {seed} | {refTime:F2} | {refIterations} | {refConverged} | {refSse:G6} | 1 |");
            }

            foreach (var init in new[] { KMeansInit.KMeansPlusPlus, KMeansInit.Density, KMeansInit.Linear })
            {
                KMeans1D.Fit(weights, k, init, seed, maxIterations); // warm-up (JIT)
                var times = new double[runs];
                KMeansResult result = null!;
                for (int r = 0; r < runs; r++)
                {
                    sw.Restart();
                    result = KMeans1D.Fit(weights, k, init, seed, maxIterations);
                    times[r] = sw.Elapsed.TotalSeconds;
                }
                Array.Sort(times);
                // Recomputed here over the original order, independent of the SSE Fit reports.
                double sse = Sse(weights, result.Centroids);
                Console.WriteLine($"| KMeans1D {init} | {seed} | {times[runs / 2]:F3} | {result.Iterations} | {result.Converged} | {sse:G6} | {sse / refSse:F4} |");
                if (Math.Abs(sse - result.SumOfSquaredErrors) > 1e-6 * sse)
                    Console.WriteLine($"  warning: KMeans1D reported SSE {result.SumOfSquaredErrors:G9}, recomputed {sse:G9}");
            }
        }
        return 0;
    }

    /// <summary>Σ (x − nearest centroid)² by a plain scan of the centroids (independent of both methods' assignment).</summary>
    private static double Sse(float[] values, float[] centroids)
    {
        var sorted = (float[])centroids.Clone();
        Array.Sort(sorted);
        double sse = 0;
        foreach (float v in values)
        {
            int j = Nearest(sorted, v);
            double d = v - (double)sorted[j];
            sse += d * d;
        }
        return sse;
    }

    private static int Nearest(float[] sortedCentroids, float v)
    {
        int at = Array.BinarySearch(sortedCentroids, v);
        if (at >= 0) return at;
        int hi = ~at;
        if (hi == 0) return 0;
        if (hi == sortedCentroids.Length) return hi - 1;
        return v - (double)sortedCentroids[hi - 1] <= sortedCentroids[hi] - (double)v ? hi - 1 : hi;
    }

    /// <summary>
    /// Textbook k-means++ (Arthur and Vassilvitskii 2007) then Lloyd's algorithm, on the values in their original
    /// order: the reference the issue asks KMeans1D to match or beat.
    /// </summary>
    private static (float[] Centroids, int Iterations, bool Converged) ReferenceLloyd(float[] x, int k, int seed, int maxIterations)
    {
        int n = x.Length;
        var rng = new Random(seed);
        var centroids = new double[k];
        var d2 = new double[n];
        centroids[0] = x[rng.Next(n)];
        double total = 0;
        for (int i = 0; i < n; i++) { double d = x[i] - centroids[0]; d2[i] = d * d; total += d2[i]; }
        int chosen = 1;
        for (; chosen < k && total > 0; chosen++)
        {
            double r = rng.NextDouble() * total;
            int pick = n - 1;
            for (int i = 0; i < n; i++)
            {
                r -= d2[i];
                if (r < 0) { pick = i; break; }
            }
            double c = x[pick];
            centroids[chosen] = c;
            total = 0;
            for (int i = 0; i < n; i++)
            {
                double d = x[i] - c;
                if (d * d < d2[i]) d2[i] = d * d;
                total += d2[i];
            }
        }
        centroids = centroids[..chosen];
        Array.Sort(centroids);

        var assignment = new int[n];
        Array.Fill(assignment, -1);
        var sums = new double[centroids.Length];
        var counts = new long[centroids.Length];
        var mids = new double[centroids.Length - 1];
        int iterations = 0;
        bool converged = false;
        while (iterations < maxIterations)
        {
            for (int j = 0; j < mids.Length; j++) mids[j] = (centroids[j] + centroids[j + 1]) / 2;
            long changed = 0;
            Array.Clear(sums);
            Array.Clear(counts);
            for (int i = 0; i < n; i++)
            {
                double v = x[i];
                int lo = 0, hi = mids.Length; // first midpoint ≥ v: the nearest centroid (ties to the lower)
                while (lo < hi)
                {
                    int mid = (lo + hi) >>> 1;
                    if (mids[mid] < v) lo = mid + 1; else hi = mid;
                }
                if (assignment[i] != lo) { assignment[i] = lo; changed++; }
                sums[lo] += v;
                counts[lo]++;
            }
            if (changed == 0) { converged = true; break; }
            iterations++;
            for (int j = 0; j < centroids.Length; j++)
                if (counts[j] > 0) centroids[j] = sums[j] / counts[j]; // an empty cluster keeps its centroid
            Array.Sort(centroids);
        }
        return (centroids.Select(c => (float)c).ToArray(), iterations, converged);
    }
}
