using System.Numerics.Tensors;
using MLNetCompress.Pruning;

namespace MLNetCompress.Clustering;

/// <summary>
/// The least-squares problem of a layer's codebook with its assignment fixed. Each output row r of the layer computes
/// y_r = w_r·x; weight sharing replaces w_r by M_r c, where M_r is the row's one-hot assignment (d × K) and c the
/// codebook. Over the calibration inputs (H = E[x·xᵀ]) the output error Σ_r (w_r − M_r c)ᵀ H (w_r − M_r c) is
/// <c>Norm − 2 cᵀB + cᵀA c</c> with <c>A = Σ_r M_rᵀ H M_r</c> (K × K) and <c>B = Σ_r M_rᵀ H w_r</c>: quadratic in the
/// K centroids, so the best codebook solves the K × K normal equations A c = B.
/// </summary>
internal sealed class CodebookSystem
{
    private CodebookSystem(int k, double[] a, double[] b, double norm)
    {
        K = k;
        A = a;
        B = b;
        Norm = norm;
    }

    /// <summary>Codebook size.</summary>
    public int K { get; }

    /// <summary>A_ab = Σ_r Σ_{i: idx=a} Σ_{j: idx=b} H_ij, row-major K × K (symmetric); the row and column of a skipped centroid are 0.</summary>
    public double[] A { get; }

    /// <summary>B_a = Σ_r Σ_{i: idx=a} (H w_r)_i; 0 for a skipped centroid.</summary>
    public double[] B { get; }

    /// <summary>Σ_r w_rᵀ H w_r: the output energy errors are relative to.</summary>
    public double Norm { get; }

    /// <summary>Rows handled together: each row of H is read once per block and stays in cache for all of them.</summary>
    private const int BlockRows = 16;

    /// <summary>
    /// Accumulates A, B and Norm of a layer. Cost O(rows · n²) with n the kept inputs of a row: each pair (i, j) of a row's
    /// inputs is visited once (H is symmetric), the columns of a row grouped by centroid so that the sum of row i of H
    /// over one centroid's columns is one contiguous gather. Rows are split among a few workers; the result is summed
    /// in a fixed order, so it does not depend on the schedule.
    /// </summary>
    /// <param name="h">E[x·xᵀ] of the layer's input vectors, row-major <paramref name="d"/> × <paramref name="d"/>.</param>
    /// <param name="d">Inputs per output row (the reduction length).</param>
    /// <param name="weights">The original weights.</param>
    /// <param name="indices">The centroid of every weight (same layout as <paramref name="weights"/>).</param>
    /// <param name="k">Codebook size (every index is below it).</param>
    /// <param name="rows">Output rows.</param>
    /// <param name="rowStride">Offset between consecutive rows' first values.</param>
    /// <param name="colStride">Offset between consecutive values of one row.</param>
    /// <param name="skip">A centroid whose value is fixed at 0 (a pruned layer's zeros), or −1: its weights add nothing
    /// (their value is 0 before and after), so they are left out of the work.</param>
    public static CodebookSystem Build(ReadOnlySpan<double> h, int d, ReadOnlySpan<float> weights, ReadOnlySpan<byte> indices, int k,
        int rows, int rowStride, int colStride, int skip = -1)
    {
        if (h.Length != d * d) throw new ArgumentException($"H has {h.Length} values, not {d}×{d}.", nameof(h));
        if (weights.Length != indices.Length) throw new ArgumentException("one index per weight.", nameof(indices));
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        // Rows are copied out contiguously once; the workers then only read shared arrays.
        var w = new float[rows * d];
        var idx = new byte[rows * d];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < d; i++)
            {
                int at = r * rowStride + i * colStride;
                w[r * d + i] = weights[at];
                idx[r * d + i] = indices[at];
                if (indices[at] >= k) throw new ArgumentException($"index {indices[at]} is outside a codebook of {k}.", nameof(indices));
                if (indices[at] == skip && weights[at] != 0) throw new ArgumentException($"centroid {skip} is held at 0 but a weight on it is {weights[at]}.", nameof(skip));
            }
        // Single precision halves the bytes each gather touches (a row of H stays in L1 longer); sums are in double.
        var hArray = new float[h.Length];
        TensorPrimitives.ConvertTruncating<double, float>(h, hArray);
        int blocks = (rows + BlockRows - 1) / BlockRows;
        var partA = new double[blocks][];
        var partB = new double[blocks][];
        var partNorm = new double[blocks];
        int next = -1;
        int workers = Math.Max(1, Math.Min(Environment.ProcessorCount, blocks));
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, _ =>
        {
            var buffers = new BlockBuffers(d, k);
            for (int blk = Interlocked.Increment(ref next); blk < blocks; blk = Interlocked.Increment(ref next))
            {
                int r0 = blk * BlockRows, count = Math.Min(BlockRows, rows - r0);
                var a = partA[blk] = new double[k * k];
                var b = partB[blk] = new double[k];
                partNorm[blk] = AccumulateBlock(hArray, d, w, idx, k, r0, count, skip, buffers, a, b);
            }
        });
        var sumA = new double[k * k];
        var sumB = new double[k];
        double norm = 0;
        for (int blk = 0; blk < blocks; blk++)
        {
            TensorPrimitives.Add(sumA, partA[blk], sumA);
            TensorPrimitives.Add(sumB, partB[blk], sumB);
            norm += partNorm[blk];
        }
        return new CodebookSystem(k, sumA, sumB, norm);
    }

    private sealed class BlockBuffers(int d, int k)
    {
        // Per row of the block: its columns grouped by centroid (ascending column within a group), where each group
        // starts, and how many of the group's columns lie before the current i.
        public readonly int[] Columns = new int[BlockRows * d];
        public readonly float[] Weights = new float[BlockRows * d]; // w at Columns[t]: read in order, not gathered
        public readonly int[] Starts = new int[BlockRows * (k + 1)];
        public readonly int[] Before = new int[BlockRows * k];
    }

    private static double AccumulateBlock(float[] h, int d, float[] w, byte[] idx, int k, int r0, int count, int skip,
        BlockBuffers buf, double[] a, double[] b)
    {
        for (int r = 0; r < count; r++)
        {
            var rowIdx = idx.AsSpan((r0 + r) * d, d);
            var starts = buf.Starts.AsSpan(r * (k + 1), k + 1);
            starts.Clear();
            foreach (byte c in rowIdx) if (c != skip) starts[c + 1]++;
            for (int c = 0; c < k; c++) starts[c + 1] += starts[c];
            var before = buf.Before.AsSpan(r * k, k);
            before.Clear();
            var columns = buf.Columns.AsSpan(r * d, d);
            for (int i = 0; i < d; i++)
            {
                int c = rowIdx[i];
                if (c != skip) columns[starts[c] + before[c]++] = i;
            }
            var ordered = buf.Weights.AsSpan(r * d, d);
            for (int t = 0; t < starts[k]; t++) ordered[t] = w[(r0 + r) * d + columns[t]];
            before.Clear();
        }
        double norm = 0;
        for (int i = 0; i < d; i++)
        {
            var hRow = h.AsSpan(i * d, d);
            double hii = hRow[i];
            for (int r = 0; r < count; r++)
            {
                int ci = idx[(r0 + r) * d + i];
                if (ci == skip) continue;
                double wi = w[(r0 + r) * d + i];
                var starts = buf.Starts.AsSpan(r * (k + 1), k + 1);
                var before = buf.Before.AsSpan(r * k, k);
                var columns = buf.Columns.AsSpan(r * d, d);
                var ordered = buf.Weights.AsSpan(r * d, d);
                // Pairs (i, j) with j < i in the same row, both ways (H is symmetric, so each pair is read once):
                // H_ij adds to A[ci, c] and A[c, ci]; H_ij·w_j to B[ci]; H_ji·w_i to B[c]; both to the norm.
                double cross = 0;
                for (int c = 0; c < k; c++)
                {
                    int from = starts[c], to = from + before[c];
                    if (to == from) continue;
                    double s0 = 0, s1 = 0, sw0 = 0, sw1 = 0;
                    int t = from;
                    for (; t + 1 < to; t += 2)
                    {
                        int j0 = columns[t], j1 = columns[t + 1];
                        double h0 = hRow[j0], h1 = hRow[j1];
                        s0 += h0;
                        s1 += h1;
                        sw0 += h0 * ordered[t];
                        sw1 += h1 * ordered[t + 1];
                    }
                    if (t < to)
                    {
                        double h0 = hRow[columns[t]];
                        s0 += h0;
                        sw0 += h0 * ordered[t];
                    }
                    double sum = s0 + s1;
                    a[ci * k + c] += sum;
                    a[c * k + ci] += sum;
                    b[c] += wi * sum;
                    cross += sw0 + sw1;
                }
                a[ci * k + ci] += hii;
                b[ci] += cross + hii * wi;
                norm += wi * (2 * cross + hii * wi);
                before[ci]++;
            }
        }
        return norm;
    }

    /// <summary>The output error of <paramref name="codebook"/>: Norm − 2 cᵀB + cᵀA c (≥ 0 up to rounding).</summary>
    public double Error(ReadOnlySpan<float> codebook)
    {
        if (codebook.Length != K) throw new ArgumentException($"a codebook of {codebook.Length}, not {K}.", nameof(codebook));
        Span<double> c = K <= 256 ? stackalloc double[K] : new double[K];
        for (int a = 0; a < K; a++) c[a] = codebook[a];
        double quad = 0;
        for (int a = 0; a < K; a++) quad += c[a] * TensorPrimitives.Dot(A.AsSpan(a * K, K), c);
        return Math.Max(0, Norm - 2 * TensorPrimitives.Dot(B, c) + quad);
    }

    /// <summary>The output error relative to <see cref="Norm"/> (0 when the layer's output is 0).</summary>
    public double RelativeError(ReadOnlySpan<float> codebook) => Norm > 0 ? Error(codebook) / Norm : 0;

    /// <summary>
    /// The codebook minimizing the output error plus the ridge Σ_a λ·A_aa·(c_a − c⁰_a)² towards <paramref name="initial"/>
    /// (the k-means centroids), with centroid <paramref name="fixedZero"/> (or none, −1) held at 0. A centroid no input
    /// reaches (A_aa = 0) keeps its initial value. Null when the system is not positive definite.
    /// </summary>
    /// <param name="initial">The k-means codebook.</param>
    /// <param name="damping">λ, a fraction of each centroid's own diagonal; ≥ 0 (0: plain least squares).</param>
    /// <param name="fixedZero">Index of the centroid held at exactly 0, or −1.</param>
    public double[]? Solve(ReadOnlySpan<float> initial, double damping, int fixedZero = -1)
    {
        if (initial.Length != K) throw new ArgumentException($"a codebook of {initial.Length}, not {K}.", nameof(initial));
        var free = new List<int>(K);
        var isFree = new bool[K];
        for (int a = 0; a < K; a++)
            if (a != fixedZero && A[a * K + a] > 0) { free.Add(a); isFree[a] = true; }
        var result = new double[K];
        for (int a = 0; a < K; a++) result[a] = a == fixedZero ? 0 : initial[a];
        int n = free.Count;
        if (n == 0) return result;
        var m = new double[n * n];
        var rhs = new double[n];
        for (int p = 0; p < n; p++)
        {
            int a = free[p];
            for (int q = 0; q < n; q++) m[p * n + q] = A[a * K + free[q]];
            double lambda = damping * A[a * K + a];
            m[p * n + p] += lambda;
            // Centroids not solved for (the zero, the unreached) are constants: move their share to the right.
            double fixedShare = 0;
            for (int c = 0; c < K; c++)
                if (!isFree[c]) fixedShare += A[a * K + c] * result[c];
            rhs[p] = B[a] - fixedShare + lambda * initial[a];
        }
        if (!Cholesky.Factor(m, n)) return null;
        Cholesky.Solve(m, n, rhs);
        for (int p = 0; p < n; p++)
        {
            if (!double.IsFinite(rhs[p])) return null;
            result[free[p]] = rhs[p];
        }
        return result;
    }
}
