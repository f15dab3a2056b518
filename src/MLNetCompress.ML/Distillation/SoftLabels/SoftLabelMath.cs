using System.Numerics.Tensors;

namespace MLNetCompress.ML.Distillation;

/// <summary>The numeric kernels of soft labels: temperature softmax and log-softmax, ensemble combination and the
/// top-k form. Spans in and out, System.Numerics.Tensors SIMD, no allocation.
/// <para>A teacher's output may be logits or log-probabilities: softmax(z / T) gives the same distribution for
/// both, since log-probabilities are logits shifted by a constant per row.</para></summary>
public static class SoftLabelMath
{
    /// <summary>softmax(z / T) of one row, computed as exp((z − max z) / T) / Σ so that huge logits do not overflow.
    /// +∞ logits share all the mass; −∞ logits get none.</summary>
    /// <param name="logits">The teacher's logits (or log-probabilities) of one row.</param>
    /// <param name="temperature">T &gt; 0; T = 1 is the plain softmax, larger T flattens the distribution.</param>
    /// <param name="destination">Receives the probabilities; same length as <paramref name="logits"/> (may be the same span).</param>
    /// <exception cref="ArgumentException">A logit is NaN or every logit is −∞.</exception>
    public static void Softmax(ReadOnlySpan<float> logits, double temperature, Span<float> destination)
    {
        Shift(logits, temperature, destination, out var infinite);
        if (infinite) return;
        TensorPrimitives.Exp(destination, destination);
        TensorPrimitives.Multiply(destination, 1f / TensorPrimitives.Sum(destination), destination);
    }

    /// <summary>log softmax(z / T) of one row: (z − max z) / T − log Σ exp((z − max z) / T). Entries of −∞ stay −∞.</summary>
    /// <param name="logits">The teacher's logits (or log-probabilities) of one row.</param>
    /// <param name="temperature">T &gt; 0.</param>
    /// <param name="destination">Receives the log-probabilities (may be the same span as <paramref name="logits"/>).</param>
    /// <param name="scratch">Working space of the same length.</param>
    /// <exception cref="ArgumentException">A logit is NaN or every logit is −∞.</exception>
    public static void LogSoftmax(ReadOnlySpan<float> logits, double temperature, Span<float> destination, Span<float> scratch)
    {
        Shift(logits, temperature, destination, out var infinite);
        if (infinite)
        {
            TensorPrimitives.Log(destination, destination);
            return;
        }
        TensorPrimitives.Exp(destination, scratch[..destination.Length]);
        // Σ ≥ 1 (the max term is exp(0)), so the log is finite.
        TensorPrimitives.Subtract(destination, MathF.Log(TensorPrimitives.Sum(scratch[..destination.Length])), destination);
    }

    // destination = (z − max z) / T. For +∞ logits it holds the final distribution instead (infinite = true).
    private static void Shift(ReadOnlySpan<float> logits, double temperature, Span<float> destination, out bool infinite)
    {
        if (!(temperature > 0) || double.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "the temperature must be a finite number > 0");
        if (logits.Length == 0) throw new ArgumentException("a row needs at least one logit", nameof(logits));
        if (destination.Length != logits.Length) throw new ArgumentException($"destination has {destination.Length} values, the row {logits.Length}", nameof(destination));
        var max = TensorPrimitives.Max(logits);
        if (float.IsNaN(max)) throw new ArgumentException("the teacher output has a NaN in this row", nameof(logits));
        if (float.IsNegativeInfinity(max)) throw new ArgumentException("every logit of this row is −∞; it is no distribution", nameof(logits));
        infinite = float.IsPositiveInfinity(max);
        if (infinite)
        {
            // The classes at +∞ share the mass evenly; the limit of softmax as those logits grow together.
            var count = 0;
            foreach (var z in logits) if (float.IsPositiveInfinity(z)) count++;
            for (var i = 0; i < logits.Length; i++) destination[i] = float.IsPositiveInfinity(logits[i]) ? 1f / count : 0f;
            return;
        }
        TensorPrimitives.Subtract(logits, max, destination);
        TensorPrimitives.Multiply(destination, (float)(1.0 / temperature), destination);
    }

    /// <summary>Soft labels of a batch from one teacher: each row of <paramref name="logits"/> (rows × C) becomes
    /// softmax(z / T) in <paramref name="destination"/>.</summary>
    public static void SoftmaxRows(ReadOnlySpan<float> logits, int classes, double temperature, Span<float> destination)
    {
        CheckRows(logits.Length, classes, destination.Length);
        for (var at = 0; at < logits.Length; at += classes)
            Softmax(logits.Slice(at, classes), temperature, destination.Slice(at, classes));
    }

    /// <summary>Adds teacher <paramref name="logits"/> (rows × C) into an ensemble accumulator: for
    /// <see cref="SoftLabelCombine.Arithmetic"/> the probabilities softmax(z / T), for
    /// <see cref="SoftLabelCombine.Geometric"/> the log-probabilities. Finish with <see cref="FinishEnsemble"/>.</summary>
    /// <param name="logits">One teacher's output for the batch, rows × C.</param>
    /// <param name="classes">C.</param>
    /// <param name="temperature">T.</param>
    /// <param name="combine">How the teachers are combined.</param>
    /// <param name="accumulator">Rows × C; zero it before the first teacher.</param>
    /// <param name="scratch">Working space of at least 2 × C values.</param>
    public static void AccumulateTeacher(ReadOnlySpan<float> logits, int classes, double temperature, SoftLabelCombine combine, Span<float> accumulator, Span<float> scratch)
    {
        CheckRows(logits.Length, classes, accumulator.Length);
        if (scratch.Length < 2 * classes) throw new ArgumentException($"scratch needs {2 * classes} values", nameof(scratch));
        var row = scratch[..classes];
        var work = scratch.Slice(classes, classes);
        for (var at = 0; at < logits.Length; at += classes)
        {
            if (combine == SoftLabelCombine.Arithmetic) Softmax(logits.Slice(at, classes), temperature, row);
            else LogSoftmax(logits.Slice(at, classes), temperature, row, work);
            TensorPrimitives.Add(accumulator.Slice(at, classes), row, accumulator.Slice(at, classes));
        }
    }

    /// <summary>Turns an accumulator filled by <see cref="AccumulateTeacher"/> for <paramref name="teachers"/>
    /// teachers into distributions, in place: the arithmetic mean (Σ p_m / M), or for the geometric mean the
    /// normalized exp(Σ log p_m / M), i.e. softmax of the mean log-probability.</summary>
    public static void FinishEnsemble(Span<float> accumulator, int classes, int teachers, SoftLabelCombine combine)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(teachers, 1);
        CheckRows(accumulator.Length, classes, accumulator.Length);
        if (combine == SoftLabelCombine.Arithmetic)
        {
            // Σ p_m / M; rounding may leave the sum a few ulps from 1, so renormalize the row.
            for (var at = 0; at < accumulator.Length; at += classes)
            {
                var row = accumulator.Slice(at, classes);
                TensorPrimitives.Multiply(row, 1f / TensorPrimitives.Sum(row), row);
            }
            return;
        }
        for (var at = 0; at < accumulator.Length; at += classes)
        {
            var row = accumulator.Slice(at, classes);
            TensorPrimitives.Multiply(row, 1f / teachers, row);
            Softmax(row, 1.0, row);
        }
    }

    /// <summary>The <paramref name="indices"/>.Length largest probabilities of <paramref name="probabilities"/>, largest
    /// first (ties: the lower class first), with their class indices.</summary>
    public static void TopK(ReadOnlySpan<float> probabilities, Span<int> indices, Span<float> values)
    {
        var k = indices.Length;
        if (values.Length != k) throw new ArgumentException("indices and values must have the same length", nameof(values));
        if (k < 1 || k > probabilities.Length) throw new ArgumentOutOfRangeException(nameof(indices), k, $"k must be in 1..{probabilities.Length}");
        var filled = 0;
        for (var c = 0; c < probabilities.Length; c++)
        {
            var p = probabilities[c];
            // Strictly greater than the current k-th: equal values keep the earlier (lower) class.
            if (filled == k && !(p > values[k - 1])) continue;
            var at = filled == k ? k - 1 : filled++;
            while (at > 0 && p > values[at - 1])
            {
                values[at] = values[at - 1];
                indices[at] = indices[at - 1];
                at--;
            }
            values[at] = p;
            indices[at] = c;
        }
    }

    /// <summary>Restores a dense distribution from its top-k form: the stored probabilities go to their classes and
    /// the remaining mass max(0, 1 − Σ values) is shared evenly by the other classes.</summary>
    public static void Densify(ReadOnlySpan<int> indices, ReadOnlySpan<float> values, Span<float> destination)
    {
        var classes = destination.Length;
        var k = indices.Length;
        var rest = classes > k ? Math.Max(0f, 1f - TensorPrimitives.Sum(values)) / (classes - k) : 0f;
        destination.Fill(rest);
        for (var j = 0; j < k; j++)
        {
            var c = indices[j];
            if ((uint)c >= (uint)classes) throw new SoftLabelException($"a top-k class index {c} is outside 0..{classes - 1}; the file is damaged, regenerate it");
            destination[c] = values[j];
        }
    }

    private static void CheckRows(int length, int classes, int destination)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 1);
        if (length % classes != 0) throw new ArgumentException($"{length} values are not whole rows of {classes}");
        if (destination != length) throw new ArgumentException($"destination has {destination} values, the input {length}");
    }
}
