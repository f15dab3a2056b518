using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using Microsoft.ML.Trainers.LightGbm;

namespace MLNetCompress.ML.Distillation;

/// <summary>
/// Trains an ML.NET student on a teacher's soft labels (knowledge distillation, Hinton et al. 2015), with one of
/// ML.NET's weighted multiclass trainers (<see cref="StudentTrainer"/>).
/// </summary>
/// <remarks>
/// <para>The input is a soft-label view: a feature vector, the teacher's <c>p_T = softmax(z / T)</c> and optionally
/// the hard label. Each row becomes weighted rows, one per class, with weight <c>q_c</c> where
/// <c>q = α·onehot(y) + (1 − α)·p_T</c> (see <see cref="DistillationOptions.Alpha"/>); targets under
/// <see cref="DistillationOptions.DropThreshold"/> are dropped and the rest renormalised.</para>
/// <para>Why the trainer then minimises exactly the cross-entropy against <c>q</c>: for a maximum-entropy model the loss
/// of a row with label <c>c</c> and weight <c>w</c> is <c>−w·log s_c</c>, where <c>s</c> is the student's softmax,
/// so the expanded set's loss is <c>Σ_rows Σ_c q_c·(−log s_c)</c>, the cross-entropy against <c>q</c>. The weights of
/// a row sum to 1, so the L2 term keeps its weight against the data term (L-BFGS averages over the weight sum; SDCA's
/// λ is rescaled, see <see cref="DistillationOptions.L2Regularization"/>). LightGBM's softmax objective weights each
/// row's gradient and hessian the same way (it is forced to softmax; ML.NET would pick one-versus-all below 50,000 rows).</para>
/// <para>Temperature: the student is fitted against <c>softmax(z / T)</c>, so its logits <c>u</c> learn <c>z / T</c>.
/// As in Hinton et al., where the student is trained as <c>softmax(v / T)</c> and used as <c>softmax(v)</c>, the
/// model returned here scores with <c>softmax(T·u)</c> (<see cref="TemperatureRescale"/>), so its probabilities are
/// right at T = 1. The predicted label is the same either way.</para>
/// <para>The model is a <see cref="TransformerChain{TLastTransformer}"/> of ML.NET's public transformers (normaliser,
/// the trainer's prediction transformer, the rescale), so <c>mlContext.Model.Save</c> and <c>Load</c> work with no
/// registration. It reads <see cref="DistillationOptions.FeatureColumnName"/> and writes ML.NET's multiclass
/// <c>PredictedLabel</c> (a key; its key values are the class names) and <c>Score</c> (the probabilities).</para>
/// <para>It is not an <see cref="IEstimator{TTransformer}"/>: the schema shape an estimator must report cannot be
/// built outside ML.NET. In a pipeline, fit the featurizer first, train the student on its output, and append the
/// student to the fitted featurizer.</para>
/// </remarks>
public sealed class DistillationTrainer
{
    private readonly MLContext _ml;
    private readonly MulticlassClassificationCatalog.MulticlassClassificationTrainers _trainers;

    /// <summary>A trainer that uses <paramref name="ml"/> for everything.</summary>
    /// <exception cref="ArgumentException">The options are invalid (<see cref="DistillationOptions.Validate"/>).</exception>
    public DistillationTrainer(MLContext ml, DistillationOptions options)
        : this(ml, (ml ?? throw new ArgumentNullException(nameof(ml))).MulticlassClassification.Trainers, options)
    {
    }

    /// <summary>A trainer whose ML.NET trainers come from <paramref name="trainers"/> and whose data plumbing
    /// (the expanded view, normaliser, rescale) from <paramref name="ml"/>.</summary>
    internal DistillationTrainer(MLContext ml, MulticlassClassificationCatalog.MulticlassClassificationTrainers trainers, DistillationOptions options)
    {
        ArgumentNullException.ThrowIfNull(ml);
        ArgumentNullException.ThrowIfNull(trainers);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _ml = ml;
        _trainers = trainers;
        Options = options;
    }

    /// <summary>The options this trainer was made with.</summary>
    public DistillationOptions Options { get; }

    /// <summary>Fits the student; the same as <see cref="Train"/> without the report.</summary>
    /// <param name="input">The soft-label view.</param>
    public TransformerChain<ITransformer> Fit(IDataView input) => Train(input).Model;

    /// <summary>Expands the soft-label view into weighted rows, fits the student, and reports what it did.</summary>
    /// <param name="softLabels">Features, soft labels and (optionally) hard labels, under the options' column names.</param>
    /// <exception cref="ArgumentException">A column is missing or has the wrong type, or a row is invalid.</exception>
    public DistillationResult Train(IDataView softLabels)
    {
        ArgumentNullException.ThrowIfNull(softLabels);
        var started = Stopwatch.GetTimestamp();
        var expanded = SoftTargetExpansion.Expand(_ml, softLabels, Options);
        var report = expanded.Report;
        // SDCA averages its loss over rows, not weights: keep λ's balance against the source rows' mean cross-entropy.
        var l2Scale = (double)report.SourceRows / report.ExpandedRows;
        var model = Pipeline(l2Scale).Fit(expanded.Data);
        return new DistillationResult(_ml, model, report, FeatureSchema(report.FeatureCount), Stopwatch.GetElapsedTime(started));
    }

    /// <summary>The normaliser, the trainer, and the temperature rescale.</summary>
    private EstimatorChain<ITransformer> Pipeline(double sdcaL2Scale)
    {
        var o = Options;
        var chain = new EstimatorChain<ITransformer>();
        switch (o.EffectiveNormalization)
        {
            case FeatureNormalization.MinMax: chain = chain.Append<ITransformer>(_ml.Transforms.NormalizeMinMax(o.FeatureColumnName)); break;
            case FeatureNormalization.MeanVariance: chain = chain.Append<ITransformer>(_ml.Transforms.NormalizeMeanVariance(o.FeatureColumnName)); break;
        }
        var trainers = o.Seed is int seed ? new MLContext(seed).MulticlassClassification.Trainers : _trainers;
        chain = chain.Append<ITransformer>(Trainer(trainers, sdcaL2Scale));
        foreach (var step in TemperatureRescale.Steps(_ml, o.Temperature)) chain = chain.Append(step);
        return chain;
    }

    private IEstimator<ITransformer> Trainer(MulticlassClassificationCatalog.MulticlassClassificationTrainers trainers, double sdcaL2Scale)
    {
        var o = Options;
        const string label = SoftTargetExpansion.ClassColumn, weight = SoftTargetExpansion.WeightColumn;
        switch (o.Trainer)
        {
            case StudentTrainer.LbfgsMaximumEntropy:
            {
                var options = new LbfgsMaximumEntropyMulticlassTrainer.Options { LabelColumnName = label, FeatureColumnName = o.FeatureColumnName, ExampleWeightColumnName = weight };
                if (o.L2Regularization is { } l2) options.L2Regularization = l2;
                if (o.MaximumIterations is { } it) options.MaximumNumberOfIterations = it;
                if (o.NumberOfThreads is { } threads) options.NumberOfThreads = threads;
                return trainers.LbfgsMaximumEntropy(options);
            }
            case StudentTrainer.SdcaMaximumEntropy:
            {
                var options = new SdcaMaximumEntropyMulticlassTrainer.Options { LabelColumnName = label, FeatureColumnName = o.FeatureColumnName, ExampleWeightColumnName = weight };
                if (o.L2Regularization is { } l2) options.L2Regularization = (float)(l2 * sdcaL2Scale);
                if (o.MaximumIterations is { } it) options.MaximumNumberOfIterations = it;
                if (o.NumberOfThreads is { } threads) options.NumberOfThreads = threads;
                return trainers.SdcaMaximumEntropy(options);
            }
            case StudentTrainer.LightGbm:
            {
                // Softmax, always: ML.NET's default below 50,000 rows is one-versus-all, which is not the cross-entropy.
                var options = new LightGbmMulticlassTrainer.Options { LabelColumnName = label, FeatureColumnName = o.FeatureColumnName, ExampleWeightColumnName = weight, UseSoftmax = true };
                if (o.MaximumIterations is { } it) options.NumberOfIterations = it;
                if (o.NumberOfLeaves is { } leaves) options.NumberOfLeaves = leaves;
                if (o.LearningRate is { } rate) options.LearningRate = rate;
                if (o.MinimumExampleCountPerLeaf is { } min) options.MinimumExampleCountPerLeaf = min;
                if (o.NumberOfThreads is { } threads) options.NumberOfThreads = threads;
                if (o.Seed is int seed) options.Seed = seed;
                return trainers.LightGbm(options);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(Options), o.Trainer, "unknown student trainer");
        }
    }

    /// <summary>The input schema a saved student declares: the feature vector alone.</summary>
    private DataViewSchema FeatureSchema(int featureCount)
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(Options.FeatureColumnName, new VectorDataViewType(NumberDataViewType.Single, featureCount));
        return builder.ToSchema();
    }
}
