using System.Numerics.Tensors;

namespace MLNetCompress.Calibration;

/// <summary>
/// Running first and second moments of feature vectors of a fixed length: Σx and Σx·xᵀ (the XᵀX of layer
/// reconstruction, GPTQ and data-aware low rank), in double, so memory stays <c>dim²</c> however many
/// vectors are added.
/// </summary>
public sealed class RunningCovariance
{
    private readonly double[] sum;
    private readonly double[] products; // upper triangle filled while adding; mirrored on read
    // Vectors wait here and are added to the products a block at a time: a rank-1 update streams the whole
    // dim² matrix through memory per vector, a rank-k update keeps each row in cache for k vectors.
    private readonly double[] pending;
    private readonly int blockRows;
    private int pendingCount;

    /// <summary>Creates empty statistics for vectors of length <paramref name="dim"/>.</summary>
    public RunningCovariance(int dim)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dim, 1);
        Dim = dim;
        sum = new double[dim];
        products = new double[(long)dim * dim > int.MaxValue ? throw new ArgumentOutOfRangeException(nameof(dim), "too large a covariance") : dim * dim];
        // About 256 KiB of pending vectors, at least 1 and at most 64.
        blockRows = Math.Clamp(32768 / dim, 1, 64);
        pending = new double[blockRows * dim];
    }

    /// <summary>Vector length.</summary>
    public int Dim { get; }

    /// <summary>Vectors added so far.</summary>
    public long Count { get; private set; }

    /// <summary>Adds one vector.</summary>
    public void Add(ReadOnlySpan<float> x)
    {
        if (x.Length != Dim) throw new ArgumentException($"vector of length {x.Length}, statistics of length {Dim}", nameof(x));
        var slot = pending.AsSpan(pendingCount * Dim, Dim);
        TensorPrimitives.ConvertChecked<float, double>(x, slot);
        TensorPrimitives.Add(sum, slot, sum);
        Count++;
        if (++pendingCount == blockRows) Flush();
    }

    /// <summary>Adds the pending vectors to the upper triangle: row a gets Σₖ xₖ[a]·xₖ[a..].</summary>
    private void Flush()
    {
        for (int a = 0; a < Dim; a++)
        {
            var row = products.AsSpan(a * Dim + a, Dim - a);
            for (int k = 0; k < pendingCount; k++)
            {
                double xa = pending[k * Dim + a];
                if (xa == 0) continue;
                TensorPrimitives.MultiplyAdd(pending.AsSpan(k * Dim + a, Dim - a), xa, row, row);
            }
        }
        pendingCount = 0;
    }

    /// <summary>Adds the vectors of a tensor along <paramref name="featureAxis"/> (e.g. channel axis 1 of NCHW, or
    /// the last axis of [batch, seq, hidden]), taking every <paramref name="stride"/>-th vector.</summary>
    public void AddTensor(ReadOnlySpan<float> data, IReadOnlyList<long> shape, int featureAxis, int stride = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(stride, 1);
        var (outer, inner) = FeatureAxis.Layout(shape, featureAxis, Dim);
        var vector = new float[Dim];
        long index = 0;
        for (long o = 0; o < outer; o++)
            for (long p = 0; p < inner; p++, index++)
            {
                if (index % stride != 0) continue;
                if (inner == 1) { Add(data.Slice((int)(o * Dim), Dim)); continue; } // contiguous: no copy
                FeatureAxis.Gather(data, o, p, inner, vector);
                Add(vector);
            }
    }

    /// <summary>The mean vector.</summary>
    public double[] Mean()
    {
        var m = new double[Dim];
        if (Count > 0) TensorPrimitives.Multiply(sum, 1.0 / Count, m);
        return m;
    }

    /// <summary>E[x·xᵀ], row-major <c>Dim×Dim</c>.</summary>
    public double[] SecondMoment()
    {
        if (pendingCount > 0) Flush();
        var s = new double[Dim * Dim];
        if (Count == 0) return s;
        double inv = 1.0 / Count;
        for (int a = 0; a < Dim; a++)
            for (int b = a; b < Dim; b++)
                s[a * Dim + b] = s[b * Dim + a] = products[a * Dim + b] * inv;
        return s;
    }

    /// <summary>The covariance E[(x−μ)(x−μ)ᵀ], row-major <c>Dim×Dim</c>.</summary>
    public double[] Covariance()
    {
        var s = SecondMoment();
        var m = Mean();
        for (int a = 0; a < Dim; a++)
            for (int b = 0; b < Dim; b++) s[a * Dim + b] -= m[a] * m[b];
        return s;
    }
}
