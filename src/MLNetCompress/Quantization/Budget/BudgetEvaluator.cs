using System.Numerics.Tensors;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Runtime;

namespace MLNetCompress.Quantization.Budget;

/// <summary>
/// Runs the float model once over the eval data and keeps its outputs (rows × output size floats), then scores each
/// candidate against them: one session per candidate for the whole feed, never one per batch.
/// </summary>
internal sealed class BudgetEvaluator
{
    private readonly IDataFeed _feed;
    private readonly AccuracyBudgetOptions _options;
    private readonly List<float[][]> _baseline = [];
    private readonly List<int[]?> _labels = [];
    private readonly string[] _outputNames;
    private readonly int _classOutput;

    /// <summary>Runs the float model.</summary>
    /// <exception cref="InvalidOperationException">The feed is empty, or the metric asked for does not fit the data or the model.</exception>
    public BudgetEvaluator(byte[] baseline, AccuracyBudgetOptions options, CancellationToken cancellationToken)
    {
        _feed = options.Eval;
        _options = options;
        using var runner = Load(baseline, null);
        _outputNames = runner.OutputNames.ToArray();
        var times = new List<double>();
        long rows = 0;
        _classOutput = -1;
        DataBatch? first = null;
        foreach (var batch in Batches())
        {
            cancellationToken.ThrowIfCancellationRequested();
            first ??= batch;
            var outputs = runner.Run(batch);
            if (batch.RowCount == first.RowCount) times.Add(outputs.ElapsedMilliseconds);
            var copies = new float[outputs.Outputs.Length][];
            for (int k = 0; k < copies.Length; k++)
            {
                copies[k] = outputs.Outputs[k].Data.ToArray();
                if (_baseline.Count == 0 && _classOutput < 0 && IsClassScores(outputs.Outputs[k].Shape)) _classOutput = k;
            }
            _baseline.Add(copies);
            _labels.Add(batch.Labels);
            rows += batch.RowCount;
        }
        if (first is null) throw new InvalidOperationException($"the eval data ({_feed.Description}) gave no rows.");
        Rows = rows;
        TimeExtra(runner, first, times, cancellationToken);
        BaselineMedianMs = ModelComparer.Median(times);
        bool labeled = _labels.All(l => l is not null);
        Metric = options.Metric switch
        {
            BudgetMetric.Auto => _classOutput >= 0 ? labeled ? BudgetMetric.Accuracy : BudgetMetric.Agreement : BudgetMetric.Cosine,
            BudgetMetric.Accuracy when !labeled => throw new InvalidOperationException(
                $"the accuracy metric needs labels and the eval data ({_feed.Description}) has none; use the agreement or cosine metric."),
            BudgetMetric.Accuracy or BudgetMetric.Agreement when _classOutput < 0 => throw new InvalidOperationException(
                $"the {options.Metric.ToString().ToLowerInvariant()} metric needs an output of class scores [N,C]; the model's outputs are not; use the cosine metric."),
            _ => options.Metric,
        };
        BaselineMetric = Metric switch
        {
            BudgetMetric.Accuracy => Accuracy(b => _baseline[b][_classOutput]),
            BudgetMetric.Agreement => 100,
            _ => 1,
        };
    }

    /// <summary>The metric measured (never Auto).</summary>
    public BudgetMetric Metric { get; }

    /// <summary>The float model's value.</summary>
    public double BaselineMetric { get; }

    /// <summary>The float model's median ms per batch.</summary>
    public double BaselineMedianMs { get; }

    /// <summary>Rows evaluated.</summary>
    public long Rows { get; }

    /// <summary>Scores a candidate: its metric and median ms per batch.</summary>
    /// <exception cref="InvalidOperationException">The candidate's outputs do not match the float model's.</exception>
    public (double Metric, double MedianMs) Evaluate(byte[] candidate, CancellationToken cancellationToken)
    {
        using var runner = Load(candidate, _outputNames);
        var times = new List<double>();
        double cosineSum = 0, cosineMin = 1;
        long cosineRows = 0, agree = 0, correct = 0, classRows = 0;
        int b = 0;
        DataBatch? first = null;
        foreach (var batch in Batches())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (b >= _baseline.Count) throw new InvalidOperationException("the eval data gave more batches than when the float model ran.");
            first ??= batch;
            var outputs = runner.Run(batch);
            if (batch.RowCount == first.RowCount) times.Add(outputs.ElapsedMilliseconds);
            var reference = _baseline[b];
            for (int k = 0; k < reference.Length; k++)
            {
                var got = outputs.Outputs[k];
                if (got.Data.Length != reference[k].Length)
                    throw new InvalidOperationException($"output '{got.Name}' of the candidate has {got.Data.Length} values in batch {b}, the float model's {reference[k].Length}.");
                int rows = got.Rows, width = got.RowLength;
                for (int r = 0; r < rows; r++)
                {
                    var x = reference[k].AsSpan(r * width, width);
                    var y = got.Row(r);
                    if (Metric == BudgetMetric.Cosine)
                    {
                        cosineSum += OutputStats.Cosine(x, y) / reference.Length;
                        if (k == 0) cosineRows++;
                    }
                    else if (Metric == BudgetMetric.MinCosine)
                    {
                        // Written so that NaN wins: a row that is not finite is the worst row.
                        double cos = OutputStats.Cosine(x, y);
                        if (!(cos >= cosineMin)) cosineMin = cos;
                    }
                    else if (k == _classOutput)
                    {
                        int predicted = TensorPrimitives.IndexOfMax(y);
                        classRows++;
                        if (predicted == TensorPrimitives.IndexOfMax(x)) agree++;
                        if (_labels[b] is { } labels && predicted == labels[r]) correct++;
                    }
                }
            }
            b++;
        }
        if (first is null) throw new InvalidOperationException($"the eval data ({_feed.Description}) gave no rows.");
        TimeExtra(runner, first, times, cancellationToken);
        double metric = Metric switch
        {
            BudgetMetric.Accuracy => 100.0 * correct / Math.Max(classRows, 1),
            BudgetMetric.Agreement => 100.0 * agree / Math.Max(classRows, 1),
            BudgetMetric.MinCosine => cosineMin,
            _ => cosineRows == 0 ? 1 : cosineSum / cosineRows,
        };
        return (metric, ModelComparer.Median(times));
    }

    private ModelRunner Load(byte[] model, IReadOnlyList<string>? outputs) => ModelRunner.Load(model, _options.Runtime, _options.Log, outputs);

    private IEnumerable<DataBatch> Batches() => _feed.Batches(_options.BatchSize, _options.MaxRows);

    private void TimeExtra(ModelRunner runner, DataBatch first, List<double> times, CancellationToken cancellationToken)
    {
        for (int i = 0; i < _options.TimingRuns; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            times.Add(runner.Run(first).ElapsedMilliseconds);
        }
    }

    private double Accuracy(Func<int, float[]> scores)
    {
        long correct = 0, rows = 0;
        for (int b = 0; b < _baseline.Count; b++)
        {
            var labels = _labels[b]!;
            var s = scores(b);
            int width = s.Length / labels.Length;
            for (int r = 0; r < labels.Length; r++)
            {
                rows++;
                if (TensorPrimitives.IndexOfMax(s.AsSpan(r * width, width)) == labels[r]) correct++;
            }
        }
        return 100.0 * correct / Math.Max(rows, 1);
    }

    private static bool IsClassScores(IReadOnlyList<long> shape) => OutputStats.IsClassification(shape);
}
