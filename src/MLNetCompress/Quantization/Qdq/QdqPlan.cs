using System.Globalization;
using MLNetCompress.Calibration;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.KernelSafety;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>The quantization of one activation tensor: its calibrated range and the affine parameters from it.</summary>
/// <param name="Value">The value name.</param>
/// <param name="Range">The calibrated range (contains 0).</param>
/// <param name="Scale">The scale.</param>
/// <param name="ZeroPoint">The zero point, in the activation type's range.</param>
public sealed record QdqActivation(string Value, ActivationRange Range, float Scale, int ZeroPoint)
{
    /// <summary>One line for the report.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Value}: [{Range.Min:G4}, {Range.Max:G4}] scale {Scale:G4} zero point {ZeroPoint}");
}

/// <summary>One weight folded to int8 offline: values, scales and the axis of the scales.</summary>
public sealed class QdqWeight
{
    internal QdqWeight(string name, string opType, long[] shape, int? axis, sbyte[] quantized, float[] scales, float maxAbsError,
        PairSumOutcome safety)
    {
        Name = name; OpType = opType; Shape = shape; Axis = axis; Quantized = quantized; Scales = scales; MaxAbsError = maxAbsError;
        Safety = safety;
    }

    /// <summary>A clustered weight whose codebook is quantized: <see cref="Quantized"/> holds the int8 codebook.</summary>
    internal QdqWeight(ClusteredWeight clustered, string opType, QuantizedCodebook codebook)
        : this(clustered.Name, opType, clustered.Dims, codebook.Axis, codebook.Values, codebook.Scales, codebook.MaxAbsError, codebook.Safety)
    {
        Clustered = clustered;
        Codebook = codebook;
    }

    /// <summary>The clustered weight (index tensor + codebook) this is, or null for a plain float initializer.</summary>
    internal ClusteredWeight? Clustered { get; }

    internal QuantizedCodebook? Codebook { get; }

    /// <summary>Centroids of the codebook when the weight is clustered (its index tensor is kept and the k centroids are
    /// quantized: <see cref="Quantized"/> then holds the int8 codebook, k per channel), else null.</summary>
    public int? Clusters => Clustered?.Clusters;

    /// <summary>The float initializer's name.</summary>
    public string Name { get; }

    /// <summary>The op that reads it.</summary>
    public string OpType { get; }

    /// <summary>Its shape.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>The per-channel axis, or null for one scale.</summary>
    public int? Axis { get; }

    /// <summary>The int8 values (of a clustered weight: its int8 codebook, [channels × k]).</summary>
    public IReadOnlyList<sbyte> Quantized { get; }

    /// <summary>The scales (max|w|/127 per channel).</summary>
    public IReadOnlyList<float> Scales { get; }

    /// <summary>Largest |w − q·scale|.</summary>
    public float MaxAbsError { get; }

    /// <summary>Whether its u8×s8 pair sums could clip on a CPU without VNNI, and what the guard did.</summary>
    public PairSumOutcome Safety { get; }

    /// <summary>True when the weight is written as uint8 with zero point 128 (<see cref="PairSumGuard.Uint8Weights"/>).</summary>
    public bool StoredAsUInt8 => Safety.Treated && Safety.Guard == PairSumGuard.Uint8Weights && Clustered is null;

    private string Guarded => Safety.Describe() is { } d ? "; " + d : "";

    internal LayerChange ToLayerChange() => Clustered is { } c
        ? new(Name, OpType, "main", Shape, "float",
            $"clustered, codebook quantized: {c.Clusters} int8 centroids{(Axis is int ca ? $" per channel (axis {ca})" : ", per-tensor scale")}, index tensor kept, QDQ{Guarded}",
            c.StoredBytes, c.IndexBytes + Quantized.Count + 5L * Scales.Count + (Axis is null ? 0 : OnnxDataTypes.ByteCount(c.IndexType, Scales.Count)), MaxAbsError)
        : new(Name, OpType, "main", Shape, "float",
            (StoredAsUInt8 ? "uint8" : "int8") + (Axis is int a ? $" QDQ per-channel (axis {a})" : " QDQ per-tensor") + Guarded,
            4L * Quantized.Count, Quantized.Count + 5L * Scales.Count, MaxAbsError);
}

/// <summary>One bias stored as int32 with scale s_x·s_w (or left in float when it would overflow).</summary>
/// <param name="Name">The float initializer's name.</param>
/// <param name="Node">The node reading it.</param>
/// <param name="Quantized">The int32 values (empty when left in float).</param>
/// <param name="Scales">s_x·s_w per channel.</param>
/// <param name="PerChannel">True when the weight has per-channel scales (the bias's DequantizeLinear then has one scale
/// per value along axis 0; otherwise a single scalar scale, as opset 10 requires).</param>
internal sealed record QdqBias(string Name, NodeProto Node, int[] Quantized, float[] Scales, bool PerChannel);

/// <summary>What <see cref="QdqQuantizationPass"/> decided.</summary>
public sealed class QdqPlan
{
    internal QdqPlan(string? alreadyQuantized, IReadOnlyList<NodeProto> nodes, IReadOnlyDictionary<NodeProto, QdqNodeRule> rules,
        IReadOnlyList<QdqActivation> activations, IReadOnlyList<QdqWeight> weights, IReadOnlyList<QdqBias> biases, IReadOnlyList<string> skipped,
        IReadOnlyList<LayerSpeed>? speeds = null)
    {
        AlreadyQuantized = alreadyQuantized; NodeList = nodes; Rules = rules; Activations = activations; Weights = weights;
        BiasList = biases; Skipped = skipped; Speeds = speeds ?? [];
    }

    /// <summary>The layers timed by the speed check (<see cref="QdqOptions.KeepFloatWhereSlower"/>), kept float or not;
    /// empty when it did not run.</summary>
    public IReadOnlyList<LayerSpeed> Speeds { get; }

    /// <summary>This plan with the speed check's timings, and its reasons in place of "excluded by name" for the layers it kept float.</summary>
    internal QdqPlan WithSpeeds(IReadOnlyList<LayerSpeed> speeds, string summary)
    {
        var slower = speeds.Where(s => s.KeptFloat).ToDictionary(s => s.Layer, StringComparer.Ordinal);
        var skipped = Skipped.Where(line => !slower.Keys.Any(l => line == $"{l}: excluded by name.")).ToList();
        skipped.AddRange(slower.Values.Select(s => s + "; left in float."));
        var byLabel = speeds.ToDictionary(sp => sp.Layer, StringComparer.Ordinal);
        var byWeight = new Dictionary<string, LayerSpeed>(StringComparer.Ordinal);
        foreach (var n in NodeList)
            if (Rules[n].Weight is { } w && byLabel.TryGetValue(GraphScope.NodeLabel(n), out var speed)) byWeight.TryAdd(n.Input[w.Index], speed);
        return new QdqPlan(AlreadyQuantized, NodeList, Rules, Activations, Weights, BiasList, skipped, speeds) { SpeedSummary = summary, _speedByWeight = byWeight };
    }

    /// <summary>The speed check's whole-model verdict in one line (what was timed, what was kept), or null.</summary>
    public string? SpeedSummary { get; private init; }

    /// <summary>The speed check's timing of the layer that reads <paramref name="weight"/>, or null.</summary>
    internal LayerSpeed? SpeedOf(string weight) => _speedByWeight.GetValueOrDefault(weight);

    // Found when the timings are attached, before the rewrite renames the layers' weight inputs.
    private Dictionary<string, LayerSpeed> _speedByWeight = new(StringComparer.Ordinal);

    /// <summary>Why the model was left alone as already quantized, or null.</summary>
    public string? AlreadyQuantized { get; }

    /// <summary>The names (or labels) of the nodes quantized, in graph order.</summary>
    public IReadOnlyList<string> Nodes => NodeList.Select(n => n.Name.Length > 0 ? n.Name : n.OpType + "(" + string.Join(",", n.Output) + ")").ToList();

    /// <summary>The activations that get a QuantizeLinear/DequantizeLinear pair.</summary>
    public IReadOnlyList<QdqActivation> Activations { get; }

    /// <summary>The weights folded to int8.</summary>
    public IReadOnlyList<QdqWeight> Weights { get; }

    /// <summary>The biases stored as int32: name → (int32 values, scales).</summary>
    public IReadOnlyList<(string Name, IReadOnlyList<int> Values, IReadOnlyList<float> Scales)> Biases =>
        BiasList.Select(b => (b.Name, (IReadOnlyList<int>)b.Quantized, (IReadOnlyList<float>)b.Scales)).ToList();

    /// <summary>One line per node, weight or bias left in float, saying why.</summary>
    public IReadOnlyList<string> Skipped { get; }

    internal IReadOnlyList<NodeProto> NodeList { get; }

    internal IReadOnlyDictionary<NodeProto, QdqNodeRule> Rules { get; }

    internal IReadOnlyList<QdqBias> BiasList { get; }
}
