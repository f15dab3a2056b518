using System.Numerics.Tensors;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Preparation;

/// <summary>
/// Folds an inference-mode BatchNormalization into the Conv, ConvTranspose or Gemm that feeds it:
/// <c>y = (x − mean)·s + β</c> with <c>s = γ / √(var + ε)</c> becomes a weight scaled by <c>s</c> per output
/// channel and a bias <c>(b − mean)·s + β</c> (a bias is created when the layer has none). What is quantized
/// afterwards is then the layer ONNX Runtime fuses, and one node per layer disappears.
/// </summary>
/// <remarks>
/// Every opset variant of BatchNormalization is read: <c>epsilon</c>, opset 1–8's <c>spatial</c> (only the
/// per-channel form, <c>spatial = 1</c>, folds), opset 1–6's <c>is_test</c>/<c>consumed_inputs</c> (ignored:
/// the model is prepared for inference), opset 14's <c>training_mode</c> (a training-mode node is left).
/// The layer's output must feed only the BatchNormalization, its weights and the BatchNormalization's
/// parameters must be constants, and the statistics outputs of the BatchNormalization must be unused.
/// Folded weights get new names, so a weight shared with another layer is left intact for it.
/// </remarks>
public sealed class FoldBatchNormPass : GraphPass<FoldBatchNormPass.FoldPlan>
{
    /// <summary>Creates the pass.</summary>
    public FoldBatchNormPass(FoldBatchNormOptions? options = null) => Options = options ?? new FoldBatchNormOptions();

    /// <summary>The options.</summary>
    public FoldBatchNormOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "fold-batchnorm";

    /// <summary>What the pass decided: the folds to apply and the BatchNormalization nodes left, with reasons.</summary>
    public sealed class FoldPlan
    {
        internal FoldPlan(IReadOnlyList<Fold> folds, IReadOnlyList<string> skipped)
        {
            Folds = folds;
            Skipped = skipped;
        }

        internal IReadOnlyList<Fold> Folds { get; }

        /// <summary>Number of BatchNormalization nodes that will be folded.</summary>
        public int Count => Folds.Count;

        /// <summary>One line per BatchNormalization left, saying why.</summary>
        public IReadOnlyList<string> Skipped { get; }
    }

    internal sealed record Fold(GraphScope Scope, NodeProto Layer, NodeProto Norm, TensorProto Weight, TensorProto? Bias,
        float[] Scale, float[] Shift, double Epsilon);


    /// <inheritdoc />
    protected override FoldPlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(context);
        var folds = new List<Fold>();
        var skipped = new List<string>();
        long opset = graph.OnnxOpset;
        foreach (var scope in graph.Scopes)
            foreach (var bn in scope.Nodes)
            {
                if (bn.OpType != "BatchNormalization" || !GraphEdits.IsOnnxDomain(bn)) continue;
                var fold = PlanOne(scope, bn, opset, out string? reason);
                if (fold is not null) folds.Add(fold);
                else skipped.Add($"{GraphEdits.Label(bn)} in {scope.Path}: {reason}");
            }
        return new FoldPlan(folds, skipped);
    }

    private Fold? PlanOne(GraphScope scope, NodeProto bn, long opset, out string? reason)
    {
        reason = null;
        if (bn.Input.Count < 5) { reason = "it has fewer than 5 inputs"; return null; }
        if (GraphEdits.Int(bn, "training_mode", 0) != 0) { reason = "it runs in training mode (training_mode = 1)"; return null; }
        for (int k = 1; k < bn.Output.Count; k++)
        {
            string o = bn.Output[k];
            if (o.Length > 0 && (scope.Consumers(o).Count > 0 || scope.IsGraphOutput(o)))
            { reason = $"its statistics output '{o}' is used"; return null; }
        }
        string x = bn.Input[0];
        var layer = scope.Producer(x);
        if (layer is null || !GraphEdits.IsOnnxDomain(layer) || !Options.Allows(layer.OpType))
        { reason = layer is null ? "its input is not computed by a Conv, ConvTranspose or Gemm" : $"its input is computed by {layer.OpType}, not a Conv, ConvTranspose or Gemm"; return null; }
        if (scope.Consumers(x).Count != 1 || scope.IsGraphOutput(x))
        { reason = $"the {layer.OpType} output '{x}' is also read elsewhere"; return null; }
        if (layer.Output.Count != 1) { reason = $"the {layer.OpType} has {layer.Output.Count} outputs"; return null; }

        var p = new TensorProto[4];
        for (int k = 0; k < 4; k++)
        {
            p[k] = GraphEdits.Constant(scope, bn.Input[k + 1])!;
            if (p[k] is null) { reason = $"its parameter '{bn.Input[k + 1]}' is not a constant"; return null; }
            if (!OnnxDataTypes.IsFloatingPoint(OnnxDataTypes.FromWire(p[k].DataType))) { reason = $"its parameter '{bn.Input[k + 1]}' is not a float tensor"; return null; }
        }
        long channels = TensorData.ElementCount(p[0].Dims.ToArray(), p[0].Name);
        if (p.Any(t => t.Dims.Count != 1 || t.Dims[0] != channels))
        { reason = "its parameters are not 1-D tensors of one value per channel"; return null; }
        if (opset < 9 && GraphEdits.Int(bn, "spatial", 1) == 0 && layer.OpType != "Gemm")
        { reason = "spatial = 0 (statistics per position, not per channel) cannot fold into a weight"; return null; }

        var weight = GraphEdits.Constant(scope, layer.Input.Count > 1 ? layer.Input[1] : "");
        if (weight is null) { reason = $"the {layer.OpType} weight is not a constant"; return null; }
        var wType = OnnxDataTypes.FromWire(weight.DataType);
        if (wType is not (OnnxDataType.Float or OnnxDataType.Double or OnnxDataType.Float16))
        { reason = $"the {layer.OpType} weight is {OnnxDataTypes.Name(wType)}, not float, double or float16"; return null; }
        TensorProto? bias = null;
        if (layer.Input.Count > 2 && layer.Input[2].Length > 0)
        {
            bias = GraphEdits.Constant(scope, layer.Input[2]);
            if (bias is null) { reason = $"the {layer.OpType} bias is not a constant"; return null; }
        }
        if (!ChannelsMatch(layer, weight, bias, channels, out reason)) return null;

        double epsilon = GraphEdits.Float(bn, "epsilon", 1e-5f);
        var gamma = TensorData.ToFloatArray(p[0]);
        var beta = TensorData.ToFloatArray(p[1]);
        var mean = TensorData.ToFloatArray(p[2]);
        var variance = TensorData.ToFloatArray(p[3]);
        var scale = new float[channels];
        var shift = new float[channels];
        for (int c = 0; c < channels; c++)
        {
            // In double: var + eps can lose the epsilon in float for large variances.
            double s = gamma[c] / Math.Sqrt(variance[c] + epsilon);
            scale[c] = (float)s;
            shift[c] = (float)(beta[c] - mean[c] * s);
        }
        if (!AllFinite(scale) || !AllFinite(shift))
        { reason = "its statistics give a non-finite scale (variance + epsilon ≤ 0)"; return null; }
        return new Fold(scope, layer, bn, weight, bias, scale, shift, epsilon);
    }

    private static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (float v in values)
            if (!float.IsFinite(v)) return false;
        return true;
    }

    /// <summary>Checks the weight (and bias) layout gives exactly <paramref name="channels"/> output channels.</summary>
    private static bool ChannelsMatch(NodeProto layer, TensorProto weight, TensorProto? bias, long channels, out string? reason)
    {
        reason = null;
        var w = weight.Dims;
        long outChannels;
        switch (layer.OpType)
        {
            case "Conv":
                if (w.Count < 3) { reason = "the Conv weight has fewer than 3 dims"; return false; }
                outChannels = w[0];
                break;
            case "ConvTranspose":
                if (w.Count < 3) { reason = "the ConvTranspose weight has fewer than 3 dims"; return false; }
                outChannels = w[1] * GraphEdits.Int(layer, "group", 1);
                break;
            default: // Gemm
                if (w.Count != 2) { reason = "the Gemm weight is not 2-D"; return false; }
                outChannels = GraphEdits.Int(layer, "transB", 0) != 0 ? w[0] : w[1];
                break;
        }
        if (outChannels != channels)
        { reason = $"the {layer.OpType} has {outChannels} output channels but the BatchNormalization {channels}"; return false; }
        if (bias is null) return true;
        long n = TensorData.ElementCount(bias.Dims.ToArray(), bias.Name);
        bool perChannel = layer.OpType == "Gemm"
            ? (n == channels && (bias.Dims.Count == 1 || (bias.Dims.Count == 2 && bias.Dims[0] == 1))) || n == 1
            : n == channels && bias.Dims.Count == 1;
        if (!perChannel) { reason = $"the {layer.OpType} bias has shape [{string.Join(",", bias.Dims)}], not one value per channel"; return false; }
        return true;
    }

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, FoldPlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(context);
        if (plan.Folds.Count == 0) return PassResult.Unchanged(Name, plan.Skipped);
        var changes = new List<string>(plan.Folds.Count);
        for (int k = 0; k < plan.Folds.Count; k++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "fold", k, plan.Folds.Count);
            changes.Add(Apply(graph, plan.Folds[k]));
        }
        context.Report(Name, "fold", plan.Folds.Count, plan.Folds.Count);
        return new PassResult(Name, true, changes, plan.Skipped);
    }

    private static string Apply(ModelGraph graph, Fold f)
    {
        var scope = f.Scope;
        var layer = f.Layer;
        var wType = OnnxDataTypes.FromWire(f.Weight.DataType);
        var w = TensorData.ToFloatArray(f.Weight);
        var dims = f.Weight.Dims.ToArray();
        long channels = f.Scale.Length;
        ScaleWeight(layer, w, dims, f.Scale);

        // New bias = (b·β_gemm − mean)·s + β, i.e. b·s·β_gemm + shift (shift already holds β − mean·s).
        var bias = new float[channels];
        if (f.Bias is not null)
        {
            var b = TensorData.ToFloatArray(f.Bias);
            float beta = layer.OpType == "Gemm" ? GraphEdits.Float(layer, "beta", 1f) : 1f;
            for (int c = 0; c < channels; c++) bias[c] = (b.Length == 1 ? b[0] : b[c]) * beta;
            TensorPrimitives.Multiply(bias, f.Scale, bias);
        }
        TensorPrimitives.Add(bias, f.Shift, bias);

        string oldWeight = layer.Input[1];
        string? oldBias = layer.Input.Count > 2 && layer.Input[2].Length > 0 ? layer.Input[2] : null;
        var newWeight = TensorData.FromFloats(graph.UniqueName(oldWeight + "_bn"), dims, w, wType);
        var newBias = TensorData.FromFloats(graph.UniqueName((oldBias ?? layer.Output[0]) + "_bn_bias"), [channels], bias, wType);
        scope.AddInitializer(newWeight);
        scope.AddInitializer(newBias);

        // The layer takes the BatchNormalization's place as producer of its output (a graph output keeps its name).
        string layerOut = layer.Output[0];
        string normOut = f.Norm.Output[0];
        scope.RemoveNode(f.Norm);
        int at = GraphEdits.IndexOf(scope, layer);
        scope.RemoveNode(layer);
        layer.Input[1] = newWeight.Name;
        if (layer.Input.Count > 2) layer.Input[2] = newBias.Name; else layer.Input.Add(newBias.Name);
        layer.Output[0] = normOut;
        if (layer.OpType == "Gemm")
        {
            GraphEdits.RemoveAttribute(layer, "beta"); // the bias now carries β_gemm
            if (graph.OnnxOpset < 7) GraphEdits.SetInt(layer, "broadcast", 1);
        }
        scope.AddNode(layer, at);
        GraphEdits.DropValueInfo(scope, layerOut);

        foreach (var name in new[] { oldWeight, oldBias, f.Norm.Input[1], f.Norm.Input[2], f.Norm.Input[3], f.Norm.Input[4] })
            if (name is not null) GraphEdits.RemoveIfUnused(scope, name);
        return $"{GraphEdits.Label(f.Norm)} folded into {GraphEdits.Label(layer)} ({channels} channels, epsilon {f.Epsilon:G3}); weight {oldWeight} -> {newWeight.Name}, bias {oldBias ?? "(none)"} -> {newBias.Name}";
    }

    /// <summary>Multiplies each output channel's weights by its scale, in place, channel slice by channel slice.</summary>
    private static void ScaleWeight(NodeProto layer, float[] w, long[] dims, float[] scale)
    {
        var span = w.AsSpan();
        switch (layer.OpType)
        {
            case "Conv":
            {
                // [M, C/g, k...]: output channel m owns one contiguous block.
                int block = (int)(w.Length / dims[0]);
                for (int m = 0; m < dims[0]; m++)
                    TensorPrimitives.Multiply(span.Slice(m * block, block), scale[m], span.Slice(m * block, block));
                break;
            }
            case "ConvTranspose":
            {
                // [C, M/g, k...]: input channel c of group c / (C/g) feeds output channels g·(M/g) + j.
                long group = GraphEdits.Int(layer, "group", 1);
                int inPerGroup = (int)(dims[0] / group), outPerGroup = (int)dims[1];
                int kernel = (int)(w.Length / (dims[0] * dims[1]));
                for (int c = 0; c < dims[0]; c++)
                {
                    int g = c / inPerGroup;
                    for (int j = 0; j < outPerGroup; j++)
                    {
                        var slice = span.Slice((c * outPerGroup + j) * kernel, kernel);
                        TensorPrimitives.Multiply(slice, scale[g * outPerGroup + j], slice);
                    }
                }
                break;
            }
            default: // Gemm
            {
                int rows = (int)dims[0], cols = (int)dims[1];
                if (GraphEdits.Int(layer, "transB", 0) != 0)
                    for (int n = 0; n < rows; n++) TensorPrimitives.Multiply(span.Slice(n * cols, cols), scale[n], span.Slice(n * cols, cols));
                else
                    for (int k = 0; k < rows; k++) TensorPrimitives.Multiply(span.Slice(k * cols, cols), scale, span.Slice(k * cols, cols));
                break;
            }
        }
    }
}
