using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Runtime;

namespace MLNetCompress.Recipes;

/// <summary>What a <see cref="RecipeStep"/> may use to build its passes: the model's opset, the calibration data, the
/// runtime, and its neighbours in the recipe.</summary>
public sealed class RecipeBuildContext
{
    internal RecipeBuildContext(IReadOnlyList<RecipeStep> steps, long modelOpset, IDataFeed? calibration, RuntimeOptions runtime,
        ICollection<string> notes, bool validationOnly)
    {
        Steps = steps;
        ModelOpset = modelOpset;
        CalibrationFeed = calibration;
        Runtime = runtime;
        Notes = notes;
        ValidationOnly = validationOnly;
    }

    /// <summary>All the recipe's steps.</summary>
    public IReadOnlyList<RecipeStep> Steps { get; }

    /// <summary>The index of the step being built.</summary>
    public int Index { get; internal set; }

    /// <summary>The model's ai.onnx opset.</summary>
    public long ModelOpset { get; }

    /// <summary>The calibration data given to the runner, or null.</summary>
    public IDataFeed? CalibrationFeed { get; }

    /// <summary>The runtime calibration sessions run on (CPU or a CUDA device).</summary>
    public RuntimeOptions Runtime { get; }

    /// <summary>Receives one line per decision worth reporting (an opset upgrade, a step merged into another).</summary>
    public ICollection<string> Notes { get; }

    /// <summary>True when the passes are built only to check the recipe: the calibration data is a placeholder.</summary>
    public bool ValidationOnly { get; }

    /// <summary>True once a step asked for the calibration data.</summary>
    internal bool CalibrationRequested { get; private set; }

    /// <summary>The step after this one, or null.</summary>
    public RecipeStep? Next => Index + 1 < Steps.Count ? Steps[Index + 1] : null;

    /// <summary>The step before this one, or null.</summary>
    public RecipeStep? Previous => Index > 0 ? Steps[Index - 1] : null;

    /// <summary>The calibration data; a one-line <see cref="RecipeException"/> naming the step when there is none.</summary>
    public IDataFeed RequireCalibration()
    {
        CalibrationRequested = true;
        if (CalibrationFeed is not null) return CalibrationFeed;
        var step = Steps[Index];
        throw new RecipeException(Index, step.Name,
            "this step needs calibration data; pass --calibration SPEC to 'mlnet-compress compress', give RecipeRunOptions.Calibration, " +
            "or fit the ML.NET estimator on data");
    }

    /// <summary><paramref name="settings"/> with the runner's runtime (so calibration runs where the user asked).</summary>
    public CalibrationOptions WithRuntime(CalibrationOptions settings) => settings with { Runtime = Runtime };
}
