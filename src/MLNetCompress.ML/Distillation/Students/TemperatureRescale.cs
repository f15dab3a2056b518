using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace MLNetCompress.ML.Distillation;

/// <summary>
/// Restores the temperature of a student fitted at temperature T: its probabilities <c>s = softmax(u)</c> become
/// <c>softmax(T·u)</c>. Since <c>softmax(T·u)_c = s_c^T / Σ_k s_k^T</c>, this needs only the probabilities, so it
/// is exact for every softmax student (maximum entropy and LightGBM's multiclass objective alike) and is built from
/// ML.NET's own public, savable transforms: divide by the largest probability (an L∞ normalisation, so the largest
/// power is 1 and nothing that matters underflows), raise to the power T (an expression, <c>exp(T·log s)</c>), and
/// divide by the sum (an L1 normalisation).
/// </summary>
public static class TemperatureRescale
{
    /// <summary>The estimators that rescale <paramref name="scoreColumnName"/> in place, as one chain, or null when T
    /// is 1 (nothing to do). The predicted label does not change: raising to a positive power keeps the order.</summary>
    /// <param name="ml">The context the estimators are made with.</param>
    /// <param name="temperature">T &gt; 0.</param>
    /// <param name="scoreColumnName">The probability vector column (ML.NET's multiclass "Score").</param>
    /// <exception cref="ArgumentOutOfRangeException">T is not a positive finite number.</exception>
    public static IEstimator<ITransformer>? Estimator(MLContext ml, double temperature, string scoreColumnName = "Score")
    {
        var steps = Steps(ml, temperature, scoreColumnName);
        if (steps.Count == 0) return null;
        var chain = new EstimatorChain<ITransformer>();
        foreach (var step in steps) chain = chain.Append(step);
        return chain;
    }

    /// <summary>The three steps of <see cref="Estimator"/> one by one (none when T is 1), for appending to a
    /// pipeline without nesting a chain in it.</summary>
    /// <inheritdoc cref="Estimator" path="/param"/>
    /// <exception cref="ArgumentOutOfRangeException">T is not a positive finite number.</exception>
    public static IReadOnlyList<IEstimator<ITransformer>> Steps(MLContext ml, double temperature, string scoreColumnName = "Score")
    {
        ArgumentNullException.ThrowIfNull(ml);
        ArgumentException.ThrowIfNullOrWhiteSpace(scoreColumnName);
        if (!(temperature > 0) || !double.IsFinite(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "the temperature must be a positive number");
        if (temperature == 1) return [];
        // Fixed-point text: the expression language reads plain decimals, not exponents.
        var t = temperature.ToString("0.0###############", CultureInfo.InvariantCulture);
        return
        [
            ml.Transforms.NormalizeLpNorm(scoreColumnName, scoreColumnName, LpNormNormalizingEstimatorBase.NormFunction.Infinity, ensureZeroMean: false),
            ml.Transforms.Expression(scoreColumnName, $"s => exp({t} * log(s))", scoreColumnName),
            ml.Transforms.NormalizeLpNorm(scoreColumnName, scoreColumnName, LpNormNormalizingEstimatorBase.NormFunction.L1, ensureZeroMean: false),
        ];
    }

    /// <summary>The same rescale on one probability vector, in double precision: <c>s_c^T / Σ_k s_k^T</c>.</summary>
    /// <param name="probabilities">A probability vector (non-negative, not all zero).</param>
    /// <param name="temperature">T &gt; 0.</param>
    /// <param name="destination">Receives the rescaled vector; may be <paramref name="probabilities"/>' memory.</param>
    public static void Apply(ReadOnlySpan<float> probabilities, double temperature, Span<float> destination)
    {
        if (destination.Length < probabilities.Length) throw new ArgumentException("the destination is shorter than the input", nameof(destination));
        if (!(temperature > 0) || !double.IsFinite(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "the temperature must be a positive number");
        double max = 0;
        foreach (var p in probabilities) max = Math.Max(max, p);
        if (!(max > 0)) throw new ArgumentException("the probabilities are all zero", nameof(probabilities));
        double sum = 0;
        Span<double> powered = probabilities.Length <= 256 ? stackalloc double[probabilities.Length] : new double[probabilities.Length];
        for (var c = 0; c < probabilities.Length; c++)
        {
            powered[c] = Math.Pow(probabilities[c] / max, temperature);
            sum += powered[c];
        }
        for (var c = 0; c < probabilities.Length; c++) destination[c] = (float)(powered[c] / sum);
    }
}
