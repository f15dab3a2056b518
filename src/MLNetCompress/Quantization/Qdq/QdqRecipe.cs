using MLNetCompress.Onnx;
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
            passes.Insert(0, new UpgradeIfBelow(quantize.RequiredOpset, options.PerChannel, notes));
        }
        passes.Add(quantize);
        return passes;
    }

    /// <summary>
    /// The opset upgrade, decided when it runs: an earlier step of a recipe (prepare with a higher opset) may already
    /// have raised the model past <paramref name="target"/>, and an upgrade to a lower opset would be refused as a downgrade.
    /// </summary>
    private sealed class UpgradeIfBelow(long target, bool perChannel, ICollection<string>? notes) : IGraphPass
    {
        public string Name => "opset-upgrade";

        public PassResult Run(ModelGraph graph, PassContext context)
        {
            long from = graph.OnnxOpset;
            if (from >= target) return PassResult.Unchanged(Name);
            var result = new OpsetUpgradePass(target).Run(graph, context);
            notes?.Add($"opset upgraded from {from} to {target}: " +
                       (perChannel ? "per-channel QuantizeLinear/DequantizeLinear need opset 13." : "QuantizeLinear/DequantizeLinear need opset 10."));
            return result;
        }
    }
}
