using MLNetCompress.Onnx.Passes;
using MLNetCompress.Preparation;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>The passes of a static QDQ run: preparation (so what is quantized is what ONNX Runtime fuses), an opset
/// upgrade when the model is older than the options need, then <see cref="QdqQuantizationPass"/>.</summary>
public static class QdqRecipe
{
    /// <summary>The passes for a model of ai.onnx opset <paramref name="modelOpset"/>.</summary>
    /// <param name="modelOpset">The model's ai.onnx opset.</param>
    /// <param name="options">The quantization options.</param>
    /// <param name="notes">Receives one line per decision worth reporting (the upgrade).</param>
    public static IReadOnlyList<IGraphPass> Passes(long modelOpset, QdqOptions options, ICollection<string>? notes = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var quantize = new QdqQuantizationPass(options);
        var passes = new List<IGraphPass>(PreparationPasses.Default());
        if (modelOpset < quantize.RequiredOpset)
        {
            // Upgrading first (rather than refusing) keeps the user's command simple; the report says so.
            passes.Insert(0, new OpsetUpgradePass(quantize.RequiredOpset));
            notes?.Add($"opset upgraded from {modelOpset} to {quantize.RequiredOpset}: " +
                       (options.PerChannel ? "per-channel QuantizeLinear/DequantizeLinear need opset 13." : "QuantizeLinear/DequantizeLinear need opset 10."));
        }
        passes.Add(quantize);
        return passes;
    }
}
