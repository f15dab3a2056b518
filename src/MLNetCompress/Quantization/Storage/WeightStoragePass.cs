using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization.Storage;

/// <summary>
/// Stores the float weights of Conv, ConvTranspose, Gemm and MatMul (and optionally Gather tables) as int8,
/// int4, 2-bit or 1-bit values with per-channel or per-block float scales (or as uint8/uint4 with a scale and a
/// zero-point offset per channel or block), packed tightly, and computes each
/// weight back at load under its original name with nodes ONNX Runtime constant-folds when the session is
/// created (see <see cref="WeightExpansion"/>): the file shrinks 4x to about 30x and inference runs the same
/// float kernels at the same speed. A weight-only DequantizeLinear is not used: ONNX Runtime does not fold it
/// (it runs on every inference, and before a MatMul it is turned into a 4-bit MatMulNBits kernel).
/// </summary>
/// <remarks>
/// The expansion fits the model's opset, which is never changed: int8 is an int8 tensor and a Cast; int4 is
/// ONNX's int4 type and a Cast from opset 21, packed bytes and a lookup-table Gather below; uint8 is a uint8
/// tensor and a Cast; uint4 is ONNX's uint4 type and a Cast from opset 21, the lookup table below; 2-bit and binary
/// are always packed bytes and a lookup table. uint8/uint4 add the offsets after the scales (Mul, then Add). All forms need opset 7 (Mul broadcasting the scales); older
/// models are left alone with a reason (upgrade them first with <c>mlnet-compress upgrade</c>).
/// Weights are found as <see cref="Int8WeightStoragePass"/> finds them (initializers, Constant nodes,
/// subgraphs, behind a float16 Cast) and skipped for the same reasons.
/// </remarks>
public sealed class WeightStoragePass : LayerReportingPass<WeightStoragePlan>
{
    /// <summary>The lowest ai.onnx opset the pass rewrites: Mul broadcasts numpy-style from opset 7.</summary>
    public const long MinOpset = 7;

    /// <summary>The opset from which ONNX's int4 type can be cast to float.</summary>
    public const long NativeInt4Opset = 21;

    /// <summary>Creates the pass.</summary>
    /// <exception cref="ArgumentException">An option is out of range or names an unsupported op.</exception>
    public WeightStoragePass(WeightStorageOptions? options = null)
    {
        Options = options ?? new WeightStorageOptions();
        Options.Validate();
    }

    /// <summary>The options.</summary>
    public WeightStorageOptions Options { get; }

    /// <inheritdoc />
    public override string Name => $"{Options.Format.Name()}-weight-storage";

    /// <summary>How a weight of a model at <paramref name="opset"/> (IR <paramref name="irVersion"/>) is expanded under these options.</summary>
    public StorageExpansion ExpansionFor(long opset, long irVersion) => Options.Format switch
    {
        StorageFormat.Int8 => StorageExpansion.CastInt8,
        // ONNX's int4 type needs IR 10 and Cast from int4 needs opset 21.
        StorageFormat.Int4 when Options.UseNativeInt4 && opset >= NativeInt4Opset && irVersion >= 10 => StorageExpansion.CastInt4,
        StorageFormat.UInt8 => StorageExpansion.CastUInt8,
        StorageFormat.UInt4 when Options.UseNativeInt4 && opset >= NativeInt4Opset && irVersion >= 10 => StorageExpansion.CastUInt4,
        _ => StorageExpansion.LookupTable,
    };

    /// <inheritdoc />
    protected override IEnumerable<LayerChange> LayerChanges(WeightStoragePlan plan) =>
        plan.Weights.Select(w => w.ToLayerChange());

    /// <inheritdoc />
    protected override WeightStoragePlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(context);
        var skipped = new List<string>();
        long opset = graph.OnnxOpset;
        if (opset < MinOpset)
        {
            skipped.Add($"all weights: the model uses ai.onnx opset {opset}; storing weights as {Options.Format.Name()} needs opset {MinOpset} " +
                        $"(Mul broadcasting the scales); upgrade the model first (mlnet-compress upgrade MODEL --opset {MinOpset}).");
            return new WeightStoragePlan([], skipped);
        }
        var expansion = ExpansionFor(opset, graph.IrVersion);
        var candidates = WeightCandidates.Find(graph, Options.Ops, skipped);
        var weights = new List<PlannedStorage>(candidates.Count);
        for (int k = 0; k < candidates.Count; k++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "quantize", k, candidates.Count);
            var c = candidates[k];
            var planned = PlanWeight(graph, c, expansion, out string? reason);
            if (planned is not null) weights.Add(planned);
            else skipped.Add($"{c.Source.Name} ({c.Consumer.OpType} in {c.Source.Scope.Path}): {reason}");
        }
        context.Report(Name, "quantize", candidates.Count, candidates.Count);
        return new WeightStoragePlan(weights, skipped);
    }

    private PlannedStorage? PlanWeight(ModelGraph graph, WeightCandidate c, StorageExpansion expansion, out string? reason)
    {
        if (Options.ExcludeNodes.Contains(c.Consumer.Name))
        {
            reason = $"its node '{c.Consumer.Name}' is excluded.";
            return null;
        }
        reason = WeightCandidates.Ineligible(graph, c.Source, Options.MinElements);
        if (reason is not null) return null;
        var dims = c.Source.Tensor.Dims.ToArray();
        long count = TensorData.ElementCount(dims, c.Source.Name);
        long bytesBefore = OnnxDataTypes.ByteCount(c.Source.DataType, count);
        // The int8 and int4 tensors pad each channel to whole bytes of their own type; packed bytes to the format's.
        int perByte = expansion switch
        {
            StorageExpansion.CastInt8 or StorageExpansion.CastUInt8 => 1,
            StorageExpansion.CastInt4 or StorageExpansion.CastUInt4 => 2,
            _ => Options.Format.ValuesPerByte(),
        };
        int? axis = Options.PerChannel && dims.Length >= 2 ? WeightInputs.Axis(c.Consumer, c.InputIndex, dims.Length) : null;
        var layout = new StorageLayout(dims, axis, Options.BlockSize, perByte);
        if (Size(layout) >= bytesBefore)
        {
            // A weight with nearly one channel (or block) per value would grow; fall back to one scale.
            layout = new StorageLayout(dims, null, null, perByte);
            if (Size(layout) >= bytesBefore)
            {
                reason = $"{count} elements would not shrink as {Options.Format.Name()} plus a scale.";
                return null;
            }
        }
        var values = ReadFloats(c.Source.Tensor);
        var codes = new sbyte[layout.StoredCount];
        var scales = new float[layout.ScaleCount];
        var offsets = Options.Format.IsAsymmetric() ? new float[layout.ScaleCount] : null;
        if (!LowBitQuantizer.TryQuantize(values, layout, Options.Format, codes, scales, offsets, out float error, Options.Clip))
        {
            reason = $"it holds NaN or infinite values, which {Options.Format.Name()} cannot represent.";
            return null;
        }
        return new PlannedStorage(c, dims, Options.Format, layout, expansion, codes, scales, offsets, error);

        long Size(StorageLayout l) => BitPacking.PackedLength(Options.Format, l.StoredCount) + 4L * l.ScaleCount * (Options.Format.IsAsymmetric() ? 2 : 1);
    }

    /// <summary>
    /// The weight as floats. Float weights kept in the typed float_data field (ML.NET's ResNet18 keeps all of
    /// them there) are copied in one block instead of being re-encoded to raw bytes first.
    /// </summary>
    private static float[] ReadFloats(TensorProto t)
    {
        if (t.DataType == (int)OnnxDataType.Float && t.RawData.IsEmpty && t.DataLocation != TensorProto.Types.DataLocation.External
            && t.FloatData.Count == TensorData.ElementCount(t.Dims.ToArray(), t.Name))
        {
            var values = new float[t.FloatData.Count];
            t.FloatData.CopyTo(values, 0);
            return values;
        }
        return TensorData.ToFloatArray(t);
    }

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, WeightStoragePlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(context);
        if (plan.Weights.Count == 0) return PassResult.Unchanged(Name, plan.Skipped);
        var writer = new WeightExpansion(graph);
        var changes = new List<string>(plan.Weights.Count);
        for (int k = 0; k < plan.Weights.Count; k++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "rewrite", k, plan.Weights.Count);
            writer.Write(plan.Weights[k]);
            changes.Add(plan.Weights[k].ToString());
        }
        context.Report(Name, "rewrite", plan.Weights.Count, plan.Weights.Count);
        return new PassResult(Name, true, changes, plan.Skipped);
    }
}
