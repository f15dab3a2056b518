namespace MLNetCompress.Clustering;

/// <summary>How the centroids of <see cref="KMeans1D"/> start.</summary>
public enum KMeansInit
{
    /// <summary>k-means++: each next centroid drawn with probability ∝ its squared distance to the nearest chosen one (seeded).</summary>
    KMeansPlusPlus,
    /// <summary>Evenly spaced between the smallest and the largest value (Han et al.: keeps the rare large weights).</summary>
    Linear,
    /// <summary>Evenly spaced in the cumulative distribution: the quantiles (k+½)/K.</summary>
    Density,
}

/// <summary>What <see cref="KMeans1D.Fit"/> found.</summary>
/// <param name="Centroids">Sorted ascending, distinct; at most K (fewer when the data has fewer distinct values).</param>
/// <param name="Iterations">Lloyd iterations run.</param>
/// <param name="Converged">True when the assignment stopped changing before the iteration limit.</param>
/// <param name="SumOfSquaredErrors">Σ (x − nearest centroid)² over the data.</param>
public sealed record KMeansResult(float[] Centroids, int Iterations, bool Converged, double SumOfSquaredErrors);

/// <summary>
/// k-means on scalars, done on the sorted values: in one dimension every cluster is a contiguous run of the
/// sorted data, bounded by the midpoints between neighbouring centroids. With prefix sums of x and x², one
/// Lloyd iteration is K binary searches and K subtractions — O(K log n) instead of O(nK) — so the whole fit
/// is O(n log n) for the sort plus O(iterations · K log n). k-means++ seeding uses the same prefix sums to
/// weigh and sample whole runs at once. Deterministic for a seed. Values must be finite.
/// </summary>
public static class KMeans1D
{
    /// <summary>Clusters <paramref name="values"/> into at most <paramref name="k"/> centroids.</summary>
    /// <param name="values">The data (any order; not modified).</param>
    /// <param name="k">Number of clusters, 1 or more.</param>
    /// <param name="init">How the centroids start.</param>
    /// <param name="seed">Seed of k-means++ sampling.</param>
    /// <param name="maxIterations">
    /// Lloyd iterations at most (0: the initial centroids only). An iteration costs O(K log n), so the default lets
    /// Lloyd run to convergence: on ResNet18's 2.36M-value conv with K = 256 that takes about 1000–1300 iterations (0.2 s).
    /// </param>
    /// <exception cref="ArgumentException">A value is NaN or infinite, or the data is empty.</exception>
    public static KMeansResult Fit(ReadOnlySpan<float> values, int k, KMeansInit init = KMeansInit.KMeansPlusPlus, int seed = 0, int maxIterations = 10_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxIterations);
        if (values.IsEmpty) throw new ArgumentException("no values to cluster.", nameof(values));
        var sorted = RadixSort(values);
        // NaN sorts first, infinities at the ends.
        if (!float.IsFinite(sorted[0]) || !float.IsFinite(sorted[^1]))
            throw new ArgumentException("values must be finite to cluster.", nameof(values));
        int n = sorted.Length;
        var s1 = new double[n + 1];
        var s2 = new double[n + 1];
        for (int i = 0; i < n; i++)
        {
            s1[i + 1] = s1[i] + sorted[i];
            s2[i + 1] = s2[i] + (double)sorted[i] * sorted[i];
        }
        var data = new Sorted(sorted, s1, s2);

        int distinct = 1;
        for (int i = 1; i < n; i++) if (sorted[i] != sorted[i - 1]) distinct++;
        if (distinct <= k)
        {
            // Every distinct value is its own centroid: no error at all.
            var exact = new float[distinct];
            exact[0] = sorted[0];
            for (int i = 1, j = 1; i < n; i++) if (sorted[i] != sorted[i - 1]) exact[j++] = sorted[i];
            return new KMeansResult(exact, 0, true, 0);
        }

        var centroids = init switch
        {
            KMeansInit.Linear => Linear(sorted, k),
            KMeansInit.Density => Density(sorted, k),
            _ => PlusPlus(data, k, seed),
        };
        return Lloyd(data, Distinct(centroids), maxIterations);
    }

    private static KMeansResult Lloyd(Sorted data, float[] centroids, int maxIterations)
    {
        var (sorted, s1) = (data.Values, data.S1);
        var bounds = new int[centroids.Length + 1];
        var next = new int[centroids.Length + 1];
        Boundaries(data, centroids, bounds);
        int iterations = 0;
        bool converged = false;
        while (iterations < maxIterations)
        {
            iterations++;
            // Update: each centroid becomes the mean of its run; an empty run keeps its centroid.
            for (int j = 0; j < centroids.Length; j++)
            {
                int lo = bounds[j], hi = bounds[j + 1];
                if (hi > lo) centroids[j] = (float)((s1[hi] - s1[lo]) / (hi - lo));
            }
            Array.Sort(centroids);
            // Assign: the runs the new centroids' midpoints cut out.
            Boundaries(data, centroids, next);
            if (next.AsSpan().SequenceEqual(bounds))
            {
                converged = true;
                break;
            }
            (bounds, next) = (next, bounds);
        }
        var final = Distinct(centroids);
        if (final.Length != centroids.Length)
        {
            bounds = new int[final.Length + 1];
            Boundaries(data, final, bounds);
        }
        // Summed directly, not from the prefix sums, so the reported error has no cancellation in it.
        double sse = 0;
        for (int j = 0; j < final.Length; j++)
            for (int i = bounds[j]; i < bounds[j + 1]; i++)
            {
                double d = sorted[i] - (double)final[j];
                sse += d * d;
            }
        return new KMeansResult(final, iterations, converged, sse);
    }

    /// <summary>
    /// The index of the nearest centroid of every value (centroids sorted ascending; a value exactly between two
    /// goes to the lower one, as in <see cref="Fit"/>). <paramref name="offset"/> is added to each index.
    /// </summary>
    public static void Assign(ReadOnlySpan<float> values, ReadOnlySpan<float> centroids, Span<byte> indices, int offset = 0)
    {
        if (centroids.IsEmpty) throw new ArgumentException("no centroids.", nameof(centroids));
        if (centroids.Length + offset > 256) throw new ArgumentException("more than 256 indices do not fit a byte.", nameof(centroids));
        if (indices.Length != values.Length) throw new ArgumentException("one index per value.", nameof(indices));
        Span<double> mids = stackalloc double[centroids.Length - 1];
        for (int j = 0; j < mids.Length; j++) mids[j] = Midpoint(centroids[j], centroids[j + 1]);
        for (int i = 0; i < values.Length; i++)
        {
            double v = values[i];
            int lo = 0, hi = mids.Length; // first midpoint ≥ v
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (mids[mid] < v) lo = mid + 1; else hi = mid;
            }
            indices[i] = (byte)(lo + offset);
        }
    }

    /// <summary>
    /// The values sorted ascending by an LSD radix sort on order-preserving keys of their bits (3 passes of 11 bits):
    /// O(n), several times faster than a comparison sort on millions of weights. NaN sorts first, as in Array.Sort.
    /// </summary>
    internal static float[] RadixSort(ReadOnlySpan<float> values)
    {
        int n = values.Length;
        var keys = new uint[n];
        var scratch = new uint[n];
        for (int i = 0; i < n; i++)
        {
            uint b = BitConverter.SingleToUInt32Bits(values[i]);
            // Negative floats: flip all bits (larger magnitude sorts lower); positive: set the sign bit.
            uint key = (b & 0x8000_0000) != 0 ? ~b : b | 0x8000_0000;
            keys[i] = float.IsNaN(values[i]) ? 0 : key;
        }
        Span<int> counts = stackalloc int[2048];
        for (int shift = 0; shift < 32; shift += 11)
        {
            counts.Clear();
            foreach (uint k in keys) counts[(int)((k >> shift) & 0x7FF)]++;
            int sum = 0;
            for (int d = 0; d < counts.Length; d++) (counts[d], sum) = (sum, sum + counts[d]);
            foreach (uint k in keys) scratch[counts[(int)((k >> shift) & 0x7FF)]++] = k;
            (keys, scratch) = (scratch, keys);
        }
        var sorted = new float[n];
        for (int i = 0; i < n; i++)
        {
            uint k = keys[i];
            sorted[i] = k == 0 ? float.NaN : BitConverter.UInt32BitsToSingle((k & 0x8000_0000) != 0 ? k & 0x7FFF_FFFF : ~k);
        }
        return sorted;
    }

    private static double Midpoint(float a, float b) => ((double)a + b) / 2;

    // bounds[j]..bounds[j+1] is the run of sorted values nearest to centroid j (ties to the lower centroid).
    private static void Boundaries(Sorted data, float[] centroids, int[] bounds)
    {
        bounds[0] = 0;
        bounds[^1] = data.Values.Length;
        for (int j = 0; j + 1 < centroids.Length; j++)
            bounds[j + 1] = Math.Max(bounds[j], data.UpperBound(Midpoint(centroids[j], centroids[j + 1])));
    }

    private static float[] Distinct(float[] sortedCentroids)
    {
        Array.Sort(sortedCentroids);
        int count = 0;
        for (int j = 0; j < sortedCentroids.Length; j++)
            if (count == 0 || sortedCentroids[j] != sortedCentroids[count - 1]) sortedCentroids[count++] = sortedCentroids[j];
        return count == sortedCentroids.Length ? sortedCentroids : sortedCentroids[..count];
    }

    private static float[] Linear(float[] sorted, int k)
    {
        float min = sorted[0], max = sorted[^1];
        var c = new float[k];
        for (int j = 0; j < k; j++) c[j] = k == 1 ? (min + max) / 2 : (float)(min + (max - (double)min) * j / (k - 1));
        return c;
    }

    private static float[] Density(float[] sorted, int k)
    {
        var c = new float[k];
        for (int j = 0; j < k; j++) c[j] = sorted[Math.Min(sorted.Length - 1, (int)((j + 0.5) * sorted.Length / k))];
        return c;
    }

    // k-means++ on sorted data: the D² weight of a run nearest to one chosen centroid is O(1) from the prefix
    // sums, so a draw picks a run by weight and then the point inside it by binary search on its cumulative cost.
    private static float[] PlusPlus(Sorted data, int k, int seed)
    {
        var rng = new Random(seed);
        int n = data.Values.Length;
        var chosen = new List<float>(k) { data.Values[rng.Next(n)] };
        var pieces = new List<(int Lo, int Hi, float Center, double Cost)>(2 * k);
        while (chosen.Count < k)
        {
            pieces.Clear();
            double total = 0;
            for (int j = 0; j < chosen.Count; j++)
            {
                // Centroid j owns the values between the midpoints to its neighbours.
                int lo = j == 0 ? 0 : data.UpperBound(Midpoint(chosen[j - 1], chosen[j]));
                int hi = j + 1 == chosen.Count ? n : data.UpperBound(Midpoint(chosen[j], chosen[j + 1]));
                if (hi <= lo) continue;
                double cost = data.Cost(lo, hi, chosen[j]);
                pieces.Add((lo, hi, chosen[j], cost));
                total += cost;
            }
            if (!(total > 0)) break; // every value sits on a centroid
            double r = rng.NextDouble() * total;
            var piece = pieces[^1];
            foreach (var p in pieces)
            {
                if (r < p.Cost) { piece = p; break; }
                r -= p.Cost;
            }
            // The first index whose cumulative cost within the run passes r.
            int a = piece.Lo, b = piece.Hi - 1;
            while (a < b)
            {
                int mid = (a + b) >>> 1;
                if (data.Cost(piece.Lo, mid + 1, piece.Center) > r) b = mid; else a = mid + 1;
            }
            float pick = data.Values[a];
            int at = chosen.BinarySearch(pick);
            if (at >= 0) break; // numerically zero weight left
            chosen.Insert(~at, pick);
        }
        return [.. chosen];
    }

    /// <summary>The sorted values with prefix sums of x and x².</summary>
    private readonly record struct Sorted(float[] Values, double[] S1, double[] S2)
    {
        /// <summary>Σ (x − c)² over sorted[lo..hi), from the prefix sums (clamped at 0 against rounding).</summary>
        public double Cost(int lo, int hi, double c) =>
            Math.Max(0, S2[hi] - S2[lo] - 2 * c * (S1[hi] - S1[lo]) + c * c * (hi - lo));

        /// <summary>The first index whose value is above <paramref name="x"/>.</summary>
        public int UpperBound(double x)
        {
            int lo = 0, hi = Values.Length;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (Values[mid] <= x) lo = mid + 1; else hi = mid;
            }
            return lo;
        }
    }
}
