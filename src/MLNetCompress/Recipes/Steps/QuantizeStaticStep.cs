using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.Qdq;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"quantize-static", "perChannel":true, "range":{"method":"percentile"}, ...}</c>: static int8 QDQ of
/// weights and activations calibrated on the runner's data (<see cref="QdqRecipe"/>: preparation, an opset upgrade when
/// needed, then <see cref="QdqQuantizationPass"/>). Fields: those of <see cref="QdqOptions"/> except the calibration data.</summary>
public sealed record QuantizeStaticStep : RecipeStep<QdqOptions>
{
    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = Options with
        {
            Calibration = context.RequireCalibration(),
            CalibrationSettings = context.WithRuntime(Options.CalibrationSettings),
        };
        options.Validate();
        return QdqRecipe.Passes(context.ModelOpset, options, context.Notes);
    }
}
