using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.Storage;

namespace MLNetCompress.Quantization;

/// <summary>
/// Stores the float weights of Conv, ConvTranspose, Gemm and MatMul as int8 with per-channel float scales,
/// and computes the original weight back with <c>Cast(q → float) → Mul(scale)</c> under its original name.
/// ONNX Runtime constant-folds that pair at session load into a float initializer again, so the file is
/// about 4x smaller and inference runs the same float kernels at the same speed. (A weight-only
/// DequantizeLinear would not be folded before a Conv and would run on every inference.)
/// </summary>
/// <remarks>
/// Weights are found wherever they live: initializers or Constant nodes, in the main graph or in
/// If/Loop/Scan bodies, and behind a <c>Cast(→ float)</c> of a float16 weight. A weight read by several
/// nodes is stored once. float16, bfloat16 and double weights are stored as int8 too and cast back to
/// their type after the Mul. Weights below <see cref="Int8WeightStorageOptions.MinElements"/>, integer
/// weights, graph outputs and initializers a caller may override are left alone, with a reason.
/// Needs ai.onnx opset 7 (Mul with numpy broadcasting of the scales).
/// </remarks>
public sealed class Int8WeightStoragePass : LayerReportingPass<Int8WeightStoragePlan>
{
    /// <summary>The lowest ai.onnx opset the pass rewrites: Mul broadcasts numpy-style from opset 7.</summary>
    public const long MinOpset = 7;

    /// <summary>Creates the pass.</summary>
    /// <exception cref="ArgumentException">An option is out of range or names an unsupported op.</exception>
    public Int8WeightStoragePass(Int8WeightStorageOptions? options = null)
    {
        Options = options ?? new Int8WeightStorageOptions();
        Options.Validate();
    }

    /// <summary>The options.</summary>
    public Int8WeightStorageOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "int8-weight-storage";

    /// <inheritdoc />
    protected override IEnumerable<LayerChange> LayerChanges(Int8WeightStoragePlan plan) =>
        plan.Weights.Select(w => w.ToLayerChange());

    // ---- plan -------------------------------------------------------------------------------

    /// <inheritdoc />
    protected override Int8WeightStoragePlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(context);
        var skipped = new List<string>();
        long opset = graph.OnnxOpset;
        if (opset < MinOpset)
        {
            skipped.Add($"all weights: the model uses ai.onnx opset {opset}; storing weights as int8 needs opset {MinOpset} (Mul broadcasting the scales).");
            return new Int8WeightStoragePlan([], skipped);
        }

        var candidates = WeightCandidates.Find(graph, Options.Ops, skipped);
        var weights = new List<PlannedWeight>(candidates.Count);
        for (int k = 0; k < candidates.Count; k++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "quantize", k, candidates.Count);
            var c = candidates[k];
            var planned = PlanWeight(graph, c, out string? reason);
            if (planned is not null) weights.Add(planned);
            else skipped.Add($"{c.Source.Name} ({c.Consumer.OpType} in {c.Source.Scope.Path}): {reason}");
        }
        context.Report(Name, "quantize", candidates.Count, candidates.Count);
        return new Int8WeightStoragePlan(weights, skipped);
    }

    private PlannedWeight? PlanWeight(ModelGraph graph, WeightCandidate c, out string? reason)
    {
        var (scope, name, tensor, kind, node) = c.Source;
        reason = WeightCandidates.Ineligible(graph, c.Source, Options.MinElements);
        if (reason is not null) return null;
        var type = c.Source.DataType;
        var dims = tensor.Dims.ToArray();
        long count = TensorData.ElementCount(dims, name);

        int? axis = Options.PerChannel && dims.Length >= 2 ? WeightInputs.Axis(c.Consumer, c.InputIndex, dims.Length) : null;
        int scaleCount = SymmetricInt8.ScaleCount(dims, axis);
        long bytesBefore = OnnxDataTypes.ByteCount(type, count);
        if (count + 4L * scaleCount >= bytesBefore)
        {
            // A weight with nearly one channel per value would grow; fall back to one scale.
            axis = null;
            scaleCount = 1;
        }
        if (count + 4L >= bytesBefore)
        {
            reason = $"{count} elements would not shrink as int8 plus a scale.";
            return null;
        }
        var values = TensorData.ToFloatArray(tensor);
        var quantized = new sbyte[count];
        var scales = new float[scaleCount];
        if (!SymmetricInt8.TryQuantize(values, dims, axis, quantized, scales, out float error))
        {
            reason = "it holds NaN or infinite values, which int8 cannot represent.";
            return null;
        }
        reason = null;
        return new PlannedWeight(scope, name, kind, node, c.Consumer.OpType, dims, type, axis, quantized, scales, error);
    }

    // ---- rewrite ----------------------------------------------------------------------------

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, Int8WeightStoragePlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(context);
        if (plan.Weights.Count == 0) return PassResult.Unchanged(Name, plan.Skipped);
        // One line per stored weight.
        var changes = new List<string>(plan.Weights.Count);
        for (int k = 0; k < plan.Weights.Count; k++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "rewrite", k, plan.Weights.Count);
            var w = plan.Weights[k];
            StoreAsInt8(graph, w);
            changes.Add(w.ToString());
        }
        context.Report(Name, "rewrite", plan.Weights.Count, plan.Weights.Count);
        return new PassResult(Name, true, changes, plan.Skipped);
    }

    /// <summary>
    /// Replaces the weight by int8 values and scales (stored the way the weight was: initializers or
    /// Constant nodes) and inserts, before its first reader, the nodes that compute it back under its name.
    /// </summary>
    private static void StoreAsInt8(ModelGraph graph, PlannedWeight w)
    {
        var scope = w.Scope;
        var anchor = GraphEdits.FirstConsumer(scope, w.Name);
        var scaleDims = new long[w.Axis is null ? 0 : w.ShapeArray.Length];
        if (w.Axis is int axis)
        {
            Array.Fill(scaleDims, 1L);
            scaleDims[axis] = w.ShapeArray[axis];
        }
        var q = TensorData.FromInt8(graph.UniqueName(w.Name + "_int8"), w.ShapeArray, w.Quantized);
        var scale = TensorData.FromFloats(graph.UniqueName(w.Name + "_scale"), scaleDims, w.Scales);

        if (w.Kind == ConstantKind.Initializer)
        {
            // Also drops its graph-input entry in IR 3 models, where every initializer is listed as an input.
            scope.RemoveInitializer(w.Name);
            scope.AddInitializer(q);
            scope.AddInitializer(scale);
        }
        else
        {
            scope.RemoveNode(w.ConstantNode!);
            scope.InsertBefore(ConstantNode(graph, q), anchor);
            scope.InsertBefore(ConstantNode(graph, scale), anchor);
        }

        string asFloat = graph.UniqueName(w.Name + "_int8_float");
        string product = w.DataType == OnnxDataType.Float ? w.Name : graph.UniqueName(w.Name + "_dequantized");
        scope.InsertBefore(GraphEdits.Node(graph, "Cast", w.Name + "_int8_cast", [q.Name], [asFloat], CastTo(OnnxDataType.Float)), anchor);
        scope.InsertBefore(GraphEdits.Node(graph, "Mul", w.Name + "_int8_scale", [asFloat, scale.Name], [product]), anchor);
        // Scales multiply in float (ONNX Runtime has float kernels for every op here, so all of it folds),
        // then the result goes back to the weight's own type.
        if (w.DataType != OnnxDataType.Float)
            scope.InsertBefore(GraphEdits.Node(graph, "Cast", w.Name + "_int8_restore", [product], [w.Name], CastTo(w.DataType)), anchor);
    }



    private static NodeProto ConstantNode(ModelGraph graph, TensorProto value) =>
        GraphEdits.Node(graph, "Constant", value.Name + "_constant", [], [value.Name],
            new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = value });

    private static AttributeProto CastTo(OnnxDataType type) =>
        new() { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (long)type };

}
