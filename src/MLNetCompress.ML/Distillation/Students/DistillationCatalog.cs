using Microsoft.ML;

namespace MLNetCompress.ML.Distillation;

/// <summary>The distillation trainer in ML.NET's multiclass trainer catalog.</summary>
public static class DistillationCatalog
{
    /// <summary>
    /// A <see cref="DistillationTrainer"/>: an ML.NET student (L-BFGS or SDCA maximum entropy, or LightGBM) trained
    /// on a teacher's soft labels, <c>mlContext.MulticlassClassification.Trainers.Distill(options)</c>.
    /// </summary>
    /// <param name="catalog">The multiclass trainers catalog; the student's trainer is made from it.</param>
    /// <param name="options">Trainer, α, temperature, drop threshold and the trainer's own settings.</param>
    /// <remarks>A catalog does not hand out its context, so the expansion and the transforms around the trainer are
    /// made with a private <see cref="MLContext"/> (they have no randomness); use
    /// <see cref="DistillationTrainer(MLContext, DistillationOptions)"/> to use one context for everything.</remarks>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public static DistillationTrainer Distill(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, DistillationOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new DistillationTrainer(new MLContext(), catalog, options);
    }
}
