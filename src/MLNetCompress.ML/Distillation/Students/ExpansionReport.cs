namespace MLNetCompress.ML.Distillation;

/// <summary>What the soft-target expansion made of the soft-label rows: one weighted row per kept (row, class) target.</summary>
/// <param name="ClassCount">C: the soft-label vector's length.</param>
/// <param name="FeatureCount">The feature vector's length.</param>
/// <param name="SourceRows">Soft-label rows read.</param>
/// <param name="LabeledRows">Rows with a known hard label (the others use α = 0).</param>
/// <param name="ExpandedRows">Weighted rows the trainer saw (at most <c>SourceRows × C</c>).</param>
/// <param name="ZeroTargets">(row, class) targets that were exactly zero (they add nothing to the loss, so no row).</param>
/// <param name="DroppedTargets">Non-zero targets below the drop threshold that were dropped.</param>
/// <param name="DroppedMass">The target probability the dropped entries held, summed over all rows.</param>
/// <param name="MaxDroppedMass">The most target probability dropped from any one row.</param>
public sealed record ExpansionReport(
    int ClassCount,
    int FeatureCount,
    long SourceRows,
    long LabeledRows,
    long ExpandedRows,
    long ZeroTargets,
    long DroppedTargets,
    double DroppedMass,
    double MaxDroppedMass)
{
    /// <summary>Expanded rows per source row (1 for hard labels, up to C for flat soft labels).</summary>
    public double RowsPerSourceRow => SourceRows == 0 ? 0 : (double)ExpandedRows / SourceRows;

    /// <summary>The mean target probability dropped per source row (renormalised away).</summary>
    public double MeanDroppedMass => SourceRows == 0 ? 0 : DroppedMass / SourceRows;
}
