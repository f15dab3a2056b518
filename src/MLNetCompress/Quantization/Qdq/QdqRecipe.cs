using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Preparation;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>The passes of a static QDQ run: preparation (so what is quantized is what ONNX Runtime fuses), an opset
/// upgrade when the model is older than the options need, then <see cref="QdqQuantizationPass"/>.</summary>
public static class QdqRecipe
{
    /// <summary>The opset a model is upgraded to before static QDQ, when older.</summary>
    public const long TargetOpset = QdqQuantizationPass.MinPerChannelOpset;

    /// <summary>The passes for a model of ai.onnx opset <paramref name="modelOpset"/>.</summary>
    /// <param name="modelOpset">The model's ai.onnx opset.</param>
    /// <param name="options">The quantization options.</param>
    /// <param name="notes">Receives one line per decision worth reporting (the upgrade).</param>
    public static IReadOnlyList<IGraphPass> Passes(long modelOpset, QdqOptions options, ICollection<string>? notes = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var quantize = new QdqQuantizationPass(options);
        var passes = new List<IGraphPass>(PreparationPasses.Default());
        // Per-channel scales need opset 13; per tensor, 10 would do, but ONNX Runtime's own QDQ transformers (bias
        // quantization) insert ops such as Round (opset 11) into the graph and fail on an opset-10 model: 13 either way.
        if (modelOpset < TargetOpset)
        {
            // Upgrading first (rather than refusing) keeps the user's command simple; the report says so.
            passes.Insert(0, new UpgradeIfBelow(TargetOpset, options.PerChannel, notes));
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
                       (perChannel ? "per-channel QuantizeLinear/DequantizeLinear need opset 13." : "ONNX Runtime's QDQ transformers need opset 11 or more."));
            return result;
        }
    }
}
