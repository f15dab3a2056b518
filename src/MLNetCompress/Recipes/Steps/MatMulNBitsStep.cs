using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.NBits;

namespace MLNetCompress.Recipes.Steps;

/// <summary><c>{"step":"matmul-nbits", "bits":4, "blockSize":32}</c>: transformer MatMul weights to 4 (or 2, 8) bits in blocks
/// that ONNX Runtime runs as MatMulNBits (<see cref="MatMulNBitsPass"/>); <c>"algorithm":"gptq"</c> calibrates on the
/// runner's data. Fields: those of <see cref="MatMulNBitsOptions"/> except the calibration data.</summary>
public sealed record MatMulNBitsStep : RecipeStep<MatMulNBitsOptions>
{
    /// <inheritdoc />
    public override IEnumerable<IGraphPass> Passes(RecipeBuildContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = Options with
        {
            Calibration = Options.Algorithm == NBitsAlgorithm.Gptq ? context.RequireCalibration() : null,
            CalibrationSettings = context.WithRuntime(Options.CalibrationSettings),
        };
        return [new MatMulNBitsPass(options)];
    }
}
