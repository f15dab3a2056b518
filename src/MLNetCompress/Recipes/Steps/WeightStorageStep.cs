using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.Storage;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"weight-storage", "format":"int4", "clip":true}</c>: float weights stored as int8, int4, 2-bit or
/// 1-bit values with per-channel (or per-block) scales, packed, and expanded back to float when ONNX Runtime loads the
/// model (<see cref="WeightStoragePass"/>). Fields: those of <see cref="WeightStorageOptions"/> (<c>format</c> as
/// <c>"int8"</c>, <c>"uint8"</c>, <c>"int4"</c>, <c>"uint4"</c>, <c>"int2"</c> or <c>"binary"</c>).</summary>
public sealed record WeightStorageStep : RecipeStep<WeightStorageOptions>
{
    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context) => [new WeightStoragePass(Options)];
}
