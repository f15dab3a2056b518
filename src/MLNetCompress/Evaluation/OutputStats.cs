using System.Numerics.Tensors;
using MLNetCompress.Runtime;

namespace MLNetCompress.Evaluation;

/// <summary>Fidelity of one output of a candidate against the baseline, over all rows evaluated.</summary>
/// <param name="Name">The output's name.</param>
/// <param name="Rows">Rows compared.</param>
/// <param name="MeanCosine">Mean over rows of the cosine similarity of the two rows (1 for two zero rows).</param>
/// <param name="MinCosine">Lowest per-row cosine similarity.</param>
/// <param name="MaxAbsDiff">Largest absolute difference of any element.</param>
/// <param name="MeanAbsDiff">Mean absolute difference over all elements.</param>
/// <param name="Top1Agreement">Share of rows whose argmax agrees, for [N,C] (C &gt; 1) outputs; null otherwise.</param>
/// <param name="BaselineAccuracy">Share of rows whose baseline argmax equals the label, when the data has labels.</param>
/// <param name="CandidateAccuracy">Share of rows whose candidate argmax equals the label, when the data has labels.</param>
public sealed record OutputComparison(
    string Name,
    long Rows,
    double MeanCosine,
    double MinCosine,
    double MaxAbsDiff,
    double MeanAbsDiff,
    double? Top1Agreement,
    double? BaselineAccuracy,
    double? CandidateAccuracy);

/// <summary>Running sums for one output; memory does not grow with the number of rows.</summary>
internal sealed class OutputStats(string name)
{
    private float[] _diff = [];
    private long _rows;
    private double _sumCos;
    private double _minCos = double.PositiveInfinity;
    private double _maxAbs;
    private double _sumAbs;
    private long _elements;
    private long _classRows;
    private long _agree;
    private long _labeled;
    private long _correctA;
    private long _correctB;
    private bool _nonFinite;

    public string Name { get; } = name;

    public void Add(OutputTensor a, OutputTensor b, int[]? labels)
    {
        if (!a.Shape.SequenceEqual(b.Shape))
            throw new InvalidOperationException($"output '{Name}' is [{string.Join(",", a.Shape)}] in the baseline but [{string.Join(",", b.Shape)}] in the candidate");
        var da = a.Data;
        var db = b.Data;
        if (_diff.Length < da.Length) _diff = new float[da.Length];
        var diff = _diff.AsSpan(0, da.Length);
        if (da.Length > 0)
        {
            TensorPrimitives.Subtract(da, db, diff);
            var maxAbs = Math.Abs((double)TensorPrimitives.MaxMagnitude(diff));
            if (double.IsNaN(maxAbs)) _nonFinite = true;
            else _maxAbs = Math.Max(_maxAbs, maxAbs);
            _sumAbs += TensorPrimitives.SumOfMagnitudes(diff);
            _elements += da.Length;
        }

        var rows = a.Rows;
        var classify = IsClassification(a.Shape);
        var useLabels = labels is not null && classify && labels.Length == rows;
        for (var r = 0; r < rows; r++)
        {
            var ra = a.Row(r);
            var rb = b.Row(r);
            var cos = Cosine(ra, rb);
            if (double.IsNaN(cos)) _nonFinite = true;
            _sumCos += cos;
            _minCos = Math.Min(_minCos, cos);
            if (!classify) continue;
            var ia = TensorPrimitives.IndexOfMax(ra);
            var ib = TensorPrimitives.IndexOfMax(rb);
            _classRows++;
            if (ia == ib) _agree++;
            if (!useLabels) continue;
            _labeled++;
            if (ia == labels![r]) _correctA++;
            if (ib == labels[r]) _correctB++;
        }
        _rows += rows;
    }

    public OutputComparison Result() => new(
        Name,
        _rows,
        _nonFinite ? double.NaN : _rows == 0 ? 1 : _sumCos / _rows,
        _nonFinite ? double.NaN : _rows == 0 ? 1 : _minCos,
        _nonFinite ? double.NaN : _maxAbs,
        _nonFinite ? double.NaN : _elements == 0 ? 0 : _sumAbs / _elements,
        _classRows == 0 ? null : (double)_agree / _classRows,
        _labeled == 0 ? null : (double)_correctA / _labeled,
        _labeled == 0 ? null : (double)_correctB / _labeled);

    /// <summary>Cosine similarity of two rows: 1 for identical rows (also two zero rows), 0 when only one is zero.</summary>
    internal static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        // Bitwise-equal rows are exactly 1, not 1 minus rounding.
        if (a.SequenceEqual(b)) return 1;
        double na = TensorPrimitives.Norm(a), nb = TensorPrimitives.Norm(b);
        if (na == 0 && nb == 0) return 1;
        if (na == 0 || nb == 0) return 0;
        return Math.Clamp(TensorPrimitives.Dot(a, b) / (na * nb), -1.0, 1.0);
    }

    /// <summary>Class scores per row: [N,C] with C &gt; 1.</summary>
    internal static bool IsClassification(IReadOnlyList<long> shape) => shape.Count == 2 && shape[1] > 1;
}
