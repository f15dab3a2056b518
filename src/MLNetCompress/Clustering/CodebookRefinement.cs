using System.Diagnostics;
using System.Globalization;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;

namespace MLNetCompress.Clustering;

/// <summary>What data-aware refinement did to one layer's codebook (<see cref="KMeansClusteringOptions.Refine"/>).</summary>
/// <param name="KMeansError">The relative output error ‖X(w−ŵ)‖²/‖Xw‖² on the calibration inputs with the k-means codebook.</param>
/// <param name="RefinedError">The same with the least-squares codebook, as stored (rounded to the weight's type).</param>
/// <param name="Kept">True when the least-squares codebook is the one written (it lowered the error).</param>
/// <param name="Vectors">Calibration input vectors the error is measured over.</param>
public sealed record CodebookRefinement(double KMeansError, double RefinedError, bool Kept, long Vectors)
{
    /// <summary>The error of the codebook that is written.</summary>
    public double FinalError => Kept ? RefinedError : KMeansError;

    /// <inheritdoc />
    public override string ToString()
    {
        var c = CultureInfo.InvariantCulture;
        if (Kept) return string.Create(c, $"output error {KMeansError:0.000%} -> {RefinedError:0.000%} (refined over {Vectors} vectors)");
        return double.IsNaN(RefinedError)
            ? string.Create(c, $"output error {KMeansError:0.000%}; the least-squares system is singular: k-means codebook kept")
            : string.Create(c, $"output error {KMeansError:0.000%}, least squares {RefinedError:0.000%}: k-means codebook kept");
    }
}

/// <summary>
/// Refines the codebooks of clustered layers on calibration data: in graph order, each layer's input statistics
/// E[x·xᵀ] are collected from a working copy of the model in which every clustered weight already has its shared
/// values and the earlier layers their refined ones (so a layer is fitted to the inputs it will really get), the
/// K × K normal equations (<see cref="CodebookSystem"/>) are solved, and the refined codebook replaces the k-means one
/// only when its measured output error is lower. One ONNX Runtime session and one pass over the data per layer.
/// </summary>
internal static class CodebookRefiner
{
    public static void Refine(ModelGraph graph, IReadOnlyList<ClusteredLayer> layers, KMeansClusteringOptions options, PassContext context,
        string passName, List<string> notes)
    {
        var feed = options.Calibration ?? throw new InvalidOperationException("Refine needs calibration data.");
        var clock = Stopwatch.StartNew();
        var work = graph.Clone();
        foreach (var layer in layers)
            if (layer.Site.Scope == graph.Main) work.Main.ReplaceConstant(layer.Name, layer.Expanded(layer.CodebookValues));
        int refined = 0;
        for (int k = 0; k < layers.Count; k++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(passName, "refine", k, layers.Count);
            var layer = layers[k];
            if (LayerInputs.Of(graph, layer.Site, out string? why) is not { } inputs)
            {
                notes.Add($"{layer.Name} ({layer.OpType}): k-means codebook kept, not refined; {why}");
                continue;
            }
            long start = Stopwatch.GetTimestamp();
            var stats = inputs.Collect(work, feed, options.RefineSettings, context.Cancellation);
            var collected = Stopwatch.GetElapsedTime(start);
            var original = TensorData.ToFloatArray(layer.Site.Tensor);
            int fixedZero = layer.Zeros > 0 ? 0 : -1;
            var system = CodebookSystem.Build(stats.SecondMoment(), inputs.Inputs, original, layer.IndexValues, layer.CodebookValues.Length,
                inputs.Rows, inputs.RowStride, inputs.ColStride, fixedZero);
            double before = system.RelativeError(layer.CodebookValues);
            float[]? candidate = system.Solve(layer.CodebookValues, options.RefineDamping, fixedZero) is { } solved ? Stored(layer, solved) : null;
            double after = candidate is null ? double.NaN : system.RelativeError(candidate);
            bool keep = candidate is not null && after < before;
            var result = new CodebookRefinement(before, after, keep, stats.Count);
            layer.ApplyRefinement(keep ? candidate : null, result, original);
            context.Log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"{layer.Name} ({layer.OpType}): {result}; inputs {collected.TotalSeconds:0.00} s, solve {(Stopwatch.GetElapsedTime(start) - collected).TotalSeconds:0.00} s"));
            if (!keep) continue;
            refined++;
            work.Main.ReplaceConstant(layer.Name, layer.Expanded(layer.CodebookValues));
        }
        context.Report(passName, "refine", layers.Count, layers.Count);
        context.Log?.Invoke(string.Create(CultureInfo.InvariantCulture,
            $"codebook refinement: {refined} of {layers.Count} layers refined in {clock.Elapsed.TotalSeconds:0.0} s"));
    }

    /// <summary>The solved centroids as the model will compute them: rounded to the weight's type (zero stays zero).</summary>
    private static float[] Stored(ClusteredLayer layer, double[] solved)
    {
        var values = new float[solved.Length];
        for (int a = 0; a < values.Length; a++) values[a] = (float)solved[a];
        return TensorData.ToFloatArray(TensorData.FromFloats("codebook", [values.Length], values, layer.Site.DataType));
    }
}
