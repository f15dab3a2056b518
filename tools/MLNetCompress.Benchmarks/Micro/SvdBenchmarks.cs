using BenchmarkDotNet.Attributes;
using MLNetCompress.LowRank;
using MLNetCompress.Onnx;

namespace MLNetCompress.Benchmarks.Micro;

/// <summary>
/// SVD of ResNet18's largest conv weight (512 × 512·3·3 = 512×4608): the randomized top-r method against the full
/// Householder-QR + one-sided Jacobi SVD, timed in the same run. Falls back to a seeded random matrix of the same
/// shape when the ResNet18 package file is not beside the benchmarks.
/// </summary>
[MemoryDiagnoser]
public class SvdBenchmarks
{
    private double[] weight = [];
    private const int Rows = 512, Cols = 4608;

    /// <summary>Ranks of the truncated decompositions.</summary>
    [Params(32, 128)]
    public int Rank { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx");
        if (File.Exists(path))
        {
            var w = ModelGraph.Load(path).Constants.First(c => c.Dims is [512, 512, 3, 3]);
            weight = Svd.ToDouble(w.ToFloats());
        }
        else
        {
            var random = new Random(1);
            weight = new double[Rows * Cols];
            for (int i = 0; i < weight.Length; i++) weight[i] = random.NextDouble() - 0.5;
        }
    }

    /// <summary>The full SVD (the reference: every singular triplet, exact to rounding), truncated afterwards.</summary>
    [Benchmark(Baseline = true)]
    public SvdResult Full() => Svd.Full(weight, Rows, Cols).Truncate(Rank);

    /// <summary>Randomized top-r with the default 10 oversampling columns and 2 power iterations.</summary>
    [Benchmark]
    public SvdResult Randomized() => Svd.Randomized(weight, Rows, Cols, Rank);
}
