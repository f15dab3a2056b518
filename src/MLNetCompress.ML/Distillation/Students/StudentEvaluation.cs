using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetCompress.ML.Distillation;

/// <summary>Top-1 accuracy of a student on rows whose label is known.</summary>
/// <param name="Rows">Rows with a known label (the others are not counted).</param>
/// <param name="Correct">Rows whose predicted class is the label.</param>
public sealed record StudentAccuracy(long Rows, long Correct)
{
    /// <summary>Correct / Rows; NaN with no labelled row.</summary>
    public double Accuracy => Rows == 0 ? double.NaN : (double)Correct / Rows;
}

/// <summary>Scores data with a student and compares its predicted class with the hard label.</summary>
public static class StudentEvaluation
{
    /// <summary>Runs <paramref name="model"/> over <paramref name="data"/> and counts rows whose <c>PredictedLabel</c>
    /// (key <c>c + 1</c> for class <c>c</c>) matches the Int32 label; rows labelled -1 are skipped.</summary>
    /// <exception cref="ArgumentException">The data has no Int32 label column.</exception>
    public static StudentAccuracy Accuracy(ITransformer model, IDataView data, string labelColumnName = "Label")
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        var scored = model.Transform(data);
        var label = scored.Schema.GetColumnOrNull(labelColumnName)
            ?? throw new ArgumentException($"the data has no label column '{labelColumnName}'", nameof(data));
        if (label.Type != NumberDataViewType.Int32)
            throw new ArgumentException($"label column '{labelColumnName}' is {label.Type}; it must be an Int32 class index", nameof(data));
        var predicted = scored.Schema["PredictedLabel"];
        long rows = 0, correct = 0;
        using var cursor = scored.GetRowCursor([label, predicted]);
        var getLabel = cursor.GetGetter<int>(label);
        var getPredicted = cursor.GetGetter<uint>(predicted);
        int y = 0;
        uint key = 0;
        while (cursor.MoveNext())
        {
            getLabel(ref y);
            if (y < 0) continue;
            getPredicted(ref key);
            rows++;
            if (key == (uint)y + 1) correct++;
        }
        return new StudentAccuracy(rows, correct);
    }
}
