using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.Dynamic;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"quantize-dynamic"}</c>: transformer MatMul weights to int8 with activations quantized at run time
/// (<see cref="DynamicQuantizationPass"/>). Fields: those of <see cref="DynamicQuantizationOptions"/>.</summary>
public sealed record QuantizeDynamicStep : RecipeStep<DynamicQuantizationOptions>
{
    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context) => [new DynamicQuantizationPass(Options)];
}
