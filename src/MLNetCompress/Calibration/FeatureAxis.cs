namespace MLNetCompress.Calibration;

/// <summary>
/// Walks the feature vectors of a dense tensor along one axis (channel axis 1 of NCHW, the last axis of
/// [batch, seq, hidden]): shared by the running statistics so each validates and indexes the same way.
/// </summary>
internal static class FeatureAxis
{
    /// <summary>Checks that <paramref name="featureAxis"/> has length <paramref name="dim"/> and returns the
    /// element counts before it (outer) and after it (inner).</summary>
    public static (long Outer, long Inner) Layout(IReadOnlyList<long> shape, int featureAxis, int dim)
    {
        int rank = shape.Count;
        if (featureAxis < 0) featureAxis += rank;
        if (featureAxis < 0 || featureAxis >= rank || shape[featureAxis] != dim)
            throw new ArgumentException($"axis {featureAxis} of shape [{string.Join(",", shape)}] is not of length {dim}", nameof(featureAxis));
        long outer = 1, inner = 1;
        for (int i = 0; i < featureAxis; i++) outer *= shape[i];
        for (int i = featureAxis + 1; i < rank; i++) inner *= shape[i];
        return (outer, inner);
    }

    /// <summary>Copies the feature vector at outer index <paramref name="o"/> and inner position <paramref name="p"/>.</summary>
    public static void Gather(ReadOnlySpan<float> data, long o, long p, long inner, Span<float> vector)
    {
        long baseAt = o * vector.Length * inner + p;
        for (int c = 0; c < vector.Length; c++) vector[c] = data[(int)(baseAt + c * inner)];
    }
}
