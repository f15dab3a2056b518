using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetCompress.ML.Distillation;

/// <summary>A fitted student and what training did.</summary>
public sealed class DistillationResult
{
    private readonly MLContext _ml;

    internal DistillationResult(MLContext ml, TransformerChain<ITransformer> model, ExpansionReport expansion, DataViewSchema inputSchema, TimeSpan elapsed)
    {
        _ml = ml;
        Model = model;
        Expansion = expansion;
        InputSchema = inputSchema;
        Elapsed = elapsed;
    }

    /// <summary>The student: reads the feature column, writes <c>PredictedLabel</c> and <c>Score</c> (probabilities at T = 1).</summary>
    public TransformerChain<ITransformer> Model { get; }

    /// <summary>What the soft-target expansion made of the data.</summary>
    public ExpansionReport Expansion { get; }

    /// <summary>The schema the student reads: the feature vector column alone. <see cref="Save"/> records it.</summary>
    public DataViewSchema InputSchema { get; }

    /// <summary>Wall time of the expansion and the fit.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>Writes the student as an ML.NET model zip (<c>mlContext.Model.Load</c> reads it back), atomically:
    /// a partly written file never replaces an existing one.</summary>
    /// <param name="path">The .zip to write.</param>
    /// <returns>The bytes written.</returns>
    public long Save(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = Path.GetFullPath(path);
        var temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            _ml.Model.Save(Model, InputSchema, temp);
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
        return new FileInfo(full).Length;
    }
}
