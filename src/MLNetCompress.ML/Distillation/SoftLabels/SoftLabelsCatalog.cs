using Microsoft.ML;

namespace MLNetCompress.ML.Distillation;

/// <summary>The soft-label transform on ML.NET's transforms catalog: <c>mlContext.Transforms.SoftLabels(...)</c>.</summary>
public static class SoftLabelsCatalog
{
    /// <summary>Adds the soft labels softmax(z / T) of a teacher ONNX model, run on a float vector column, as a
    /// float vector column of length C.</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="teacherModelFile">The teacher .onnx file; its output must be [N, C] logits or log-probabilities.</param>
    /// <param name="temperature">T &gt; 0 (1: the teacher's own probabilities).</param>
    /// <param name="outputColumnName">The soft-label column.</param>
    /// <param name="inputColumnName">The float vector column the teacher reads (flattened input of one row).</param>
    /// <param name="teacherOutputName">The teacher output to read; null for its first.</param>
    public static SoftLabelsEstimator SoftLabels(this TransformsCatalog catalog, string teacherModelFile, double temperature = 1.0,
        string outputColumnName = SoftLabelFile.SoftLabelColumn, string inputColumnName = SoftLabelFile.FeaturesColumn, string? teacherOutputName = null) =>
        SoftLabels(catalog, new SoftLabelsEstimatorOptions
        {
            Teachers = [teacherModelFile],
            Temperature = temperature,
            OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName,
            TeacherOutputName = teacherOutputName,
        });

    /// <summary>Adds the soft labels of one teacher or an ensemble, as <paramref name="options"/> say.</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="options">Teachers, columns, temperature, ensemble rule, device.</param>
    public static SoftLabelsEstimator SoftLabels(this TransformsCatalog catalog, SoftLabelsEstimatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        // TransformsCatalog does not hand out its MLContext to other assemblies; a fresh context builds the ONNX
        // scoring estimators the same way (the device comes from the options).
        return new SoftLabelsEstimator(new MLContext(), options);
    }
}
