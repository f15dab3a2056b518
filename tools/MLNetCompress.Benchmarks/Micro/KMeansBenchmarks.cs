using BenchmarkDotNet.Attributes;
using MLNetCompress.Benchmarks.Board;
using MLNetCompress.Clustering;
using MLNetCompress.Onnx;
using MLNetCompress.Pruning;

namespace MLNetCompress.Benchmarks.Micro;

/// <summary>
/// 1-D k-means of ResNet18's largest weight (512×512×3×3, 2.36M values) into 256 clusters: the sorted-data Lloyd
/// of <see cref="KMeans1D"/> against one textbook O(nK) assignment sweep, and the global-threshold selection of pruning.
/// </summary>
[MemoryDiagnoser]
public class KMeansBenchmarks
{
    private string work = "";
    private float[] weights = [];
    private float[] centroids = [];

    [Params(KMeansInit.KMeansPlusPlus, KMeansInit.Density)]
    public KMeansInit Init { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        work = Path.Combine(Path.GetTempPath(), "mlnetcompress-bench-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        var graph = ModelGraph.Load(BoardModels.All["resnet18"](work).Path);
        weights = graph.Constants.Where(c => c.DataType == OnnxDataType.Float).MaxBy(c => c.ElementCount)!.ToFloats();
        centroids = KMeans1D.Fit(weights, 256, Init, seed: 1, maxIterations: 0).Centroids;
    }

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(work, recursive: true);

    /// <summary>The whole fit: sort, prefix sums, seeding and Lloyd to convergence (or 100 iterations).</summary>
    [Benchmark]
    public double FitSortedLloyd() => KMeans1D.Fit(weights, 256, Init, seed: 1).SumOfSquaredErrors;

    /// <summary>One assignment sweep of textbook Lloyd (every value against every centroid): the cost per iteration we avoid.</summary>
    [Benchmark]
    public long NaiveAssignmentSweep()
    {
        long checksum = 0;
        foreach (float v in weights)
        {
            int best = 0;
            float bestDistance = float.MaxValue;
            for (int j = 0; j < centroids.Length; j++)
            {
                float d = MathF.Abs(v - centroids[j]);
                if (d < bestDistance) { bestDistance = d; best = j; }
            }
            checksum += best;
        }
        return checksum;
    }

    /// <summary>The 90th-percentile magnitude by the radix histogram (what global pruning runs), no sort.</summary>
    [Benchmark]
    public float KthSmallestMagnitude() => MagnitudeSelection.KthSmallestMagnitude([weights], (long)(0.9 * weights.Length), out _);
}
