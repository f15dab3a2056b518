using System.Numerics.Tensors;

namespace MLNetCompress.Calibration;

/// <summary>
/// Running statistics of paired feature vectors (a, b) — the same value in a reference model and in a working
/// (partly compressed) model on the same input: the moments of b (<see cref="Working"/>), the mean of a, and the
/// cross products Σa·bᵀ. What a layer needs to be fitted to the reference model's outputs from the inputs it now
/// receives. Memory is <c>2·dim²</c> doubles, flat in the number of vectors.
/// </summary>
public sealed class RunningCrossCovariance
{
    private readonly double[] sumA;
    private readonly double[] cross; // row-major dim×dim: Σ a_i·b_j
    private readonly double[] scratchA;
    private readonly double[] scratchB;

    /// <summary>Creates empty statistics for vectors of length <paramref name="dim"/>.</summary>
    public RunningCrossCovariance(int dim)
    {
        Working = new RunningCovariance(dim);
        sumA = new double[dim];
        cross = new double[checked(dim * dim)];
        scratchA = new double[dim];
        scratchB = new double[dim];
    }

    /// <summary>Vector length.</summary>
    public int Dim => Working.Dim;

    /// <summary>Pairs added so far.</summary>
    public long Count => Working.Count;

    /// <summary>The statistics of the working model's vectors alone.</summary>
    public RunningCovariance Working { get; }

    /// <summary>Adds one pair.</summary>
    public void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != Dim || b.Length != Dim) throw new ArgumentException($"vectors of length {a.Length} and {b.Length}, statistics of length {Dim}");
        Working.Add(b);
        TensorPrimitives.ConvertChecked<float, double>(a, scratchA);
        TensorPrimitives.ConvertChecked<float, double>(b, scratchB);
        TensorPrimitives.Add(sumA, scratchA, sumA);
        for (int i = 0; i < Dim; i++)
        {
            double ai = scratchA[i];
            if (ai == 0) continue;
            var row = cross.AsSpan(i * Dim, Dim);
            TensorPrimitives.MultiplyAdd(scratchB, ai, row, row);
        }
    }

    /// <summary>Adds the paired vectors of two tensors of the same shape along <paramref name="featureAxis"/>, every
    /// <paramref name="stride"/>-th one.</summary>
    public void AddTensors(ReadOnlySpan<float> a, ReadOnlySpan<float> b, IReadOnlyList<long> shape, int featureAxis, int stride = 1)
    {
        if (a.Length != b.Length) throw new ArgumentException($"paired tensors of {a.Length} and {b.Length} values");
        ArgumentOutOfRangeException.ThrowIfLessThan(stride, 1);
        var (outer, inner) = FeatureAxis.Layout(shape, featureAxis, Dim);
        var va = new float[Dim];
        var vb = new float[Dim];
        long index = 0;
        for (long o = 0; o < outer; o++)
            for (long p = 0; p < inner; p++, index++)
            {
                if (index % stride != 0) continue;
                FeatureAxis.Gather(a, o, p, inner, va);
                FeatureAxis.Gather(b, o, p, inner, vb);
                Add(va, vb);
            }
    }

    /// <summary>The reference model's mean vector.</summary>
    public double[] ReferenceMean()
    {
        var m = new double[Dim];
        if (Count > 0) TensorPrimitives.Multiply(sumA, 1.0 / Count, m);
        return m;
    }

    /// <summary>E[a·bᵀ], row-major (rows: reference, columns: working).</summary>
    public double[] CrossMoment()
    {
        var c = new double[cross.Length];
        if (Count > 0) TensorPrimitives.Multiply(cross, 1.0 / Count, c);
        return c;
    }

    /// <summary>E[(a−μ_a)(b−μ_b)ᵀ], row-major (rows: reference, columns: working).</summary>
    public double[] CrossCovariance()
    {
        var c = CrossMoment();
        var ma = ReferenceMean();
        var mb = Working.Mean();
        for (int i = 0; i < Dim; i++)
            for (int j = 0; j < Dim; j++) c[i * Dim + j] -= ma[i] * mb[j];
        return c;
    }
}
