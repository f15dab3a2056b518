using System.Collections.Frozen;
using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Quantization.KernelSafety;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>The 8-bit type activations are quantized to.</summary>
public enum QdqActivationType
{
    /// <summary>uint8 with a zero point (U8S8): ONNX Runtime's usual CPU choice.</summary>
    U8,

    /// <summary>int8 with a zero point (S8S8).</summary>
    S8,
}

/// <summary>The type weights are quantized to.</summary>
public enum QdqWeightType
{
    /// <summary>Symmetric int8 in [-127, 127] with zero point 0.</summary>
    S8,
}

/// <summary>Settings of <see cref="QdqQuantizationPass"/>.</summary>
public sealed record QdqOptions
{
    /// <summary>The ops the pass quantizes by default: the weighted ops ONNX Runtime fuses to QLinear kernels and the
    /// ops it keeps in int8 between them. ConvTranspose has a handler but is not a default: ONNX Runtime 1.31's CPU
    /// provider does not fuse its QDQ form, so it would run a DequantizeLinear per inference and get slower.</summary>
    public static IReadOnlySet<string> DefaultOps { get; } =
        QdqHandlerRegistry.OpTypes.Where(o => o != "ConvTranspose").ToFrozenSet(StringComparer.Ordinal);

    /// <summary>The calibration data, built against the model's inputs (required).</summary>
    public required IDataFeed Calibration { get; init; }

    /// <summary>How many rows and what batch size calibration runs, and its runtime.</summary>
    public CalibrationOptions CalibrationSettings { get; init; } = new() { MaxRows = 128, BatchSize = 16 };

    /// <summary>Activation type (default U8).</summary>
    public QdqActivationType Activations { get; init; } = QdqActivationType.U8;

    /// <summary>Weight type (int8 only).</summary>
    public QdqWeightType Weights { get; init; } = QdqWeightType.S8;

    /// <summary>One scale per output channel of each weight (needs opset 13), else one per weight. A clustered weight then
    /// gets an int8 codebook of k entries per channel (its index tensor is shared), else one of k entries.</summary>
    public bool PerChannel { get; init; } = true;

    /// <summary>How layers whose u8×s8 pair sums could clip on x86 CPUs without VNNI are kept right there (see
    /// <see cref="PairSumGuard"/>; default <see cref="PairSumGuard.PairSafeWeights"/>). The model is then right
    /// whatever CPU quantizes it and whatever CPU runs it.</summary>
    public PairSumGuard Guard { get; init; } = PairSumGuard.PairSafeWeights;

    /// <summary>Never slower: time each quantized layer alone on this CPU, float against int8 (with the QuantizeLinear /
    /// DequantizeLinear its float neighbours force on it), at the shape it sees in calibration, and keep float the layers
    /// where int8 loses (<see cref="LayerSpeedCheck"/>). On by default; the timings are in <see cref="QdqPlan.Speeds"/> and
    /// the report. Turn it off for a model meant for a different CPU, or for repeatable output.</summary>
    public bool KeepFloatWhereSlower { get; init; } = true;

    /// <summary>Interleaved timed runs per model in the speed check (the fastest counts).</summary>
    public int SpeedSamples { get; init; } = 15;

    /// <summary>How activation ranges are chosen from the calibration statistics.</summary>
    public RangeMethodOptions Range { get; init; } = new();

    /// <summary>The op types to quantize (each needs a handler: see <see cref="QdqHandlerRegistry.OpTypes"/>).</summary>
    public IReadOnlySet<string> Ops { get; init; } = DefaultOps;

    /// <summary>Nodes left in float, by name (an unnamed node by its label <c>OpType(outputs)</c>).</summary>
    public IReadOnlySet<string> ExcludeNodes { get; init; } = FrozenSet<string>.Empty;

    /// <summary>Layers (node names or labels) whose weights are stored as uint8 with zero point 128 whatever
    /// <see cref="Guard"/> says: full 8-bit weights on ONNX Runtime's U8U8 kernels, which cannot clip. The remedy the
    /// verification gate's recovery applies to the layers it finds responsible, before keeping any float.</summary>
    public IReadOnlySet<string> Uint8WeightNodes { get; init; } = FrozenSet<string>.Empty;

    /// <summary>Activation statistics collected earlier on the same prepared model (the accuracy-budget search
    /// calibrates once and quantizes many times). When set, no calibration runs: a value missing here counts as one
    /// with no float statistics and stays float. Null (the default): calibrate over <see cref="Calibration"/>.</summary>
    public IReadOnlyDictionary<string, HistogramStatistics>? CalibrationStatistics { get; init; }

    /// <summary>Keeps every selected layer quantized even where ONNX Runtime will not fuse it (so it would run slower):
    /// for measuring what quantizing a layer does to the outputs, as the accuracy-budget search does one layer at a
    /// time, never for a model to hand over.</summary>
    internal bool KeepUnfusedLayers { get; init; }

    /// <summary>Histogram bins per calibrated tensor.</summary>
    public int HistogramBins { get; init; } = HistogramStatistics.DefaultBins;

    /// <summary>Checks the options.</summary>
    /// <exception cref="ArgumentException">A value is out of range or an op has no handler.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Calibration);
        Range.Validate();
        var unknown = Ops.Where(o => !QdqHandlerRegistry.OpTypes.Contains(o)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"no QDQ handler for {string.Join(", ", unknown)}; supported: {string.Join(", ", QdqHandlerRegistry.OpTypes)}.", nameof(Ops));
        if (!Enum.IsDefined(Activations)) throw new ArgumentException($"unknown activation type {Activations}.", nameof(Activations));
        if (!Enum.IsDefined(Weights)) throw new ArgumentException($"unknown weight type {Weights}.", nameof(Weights));
        if (SpeedSamples < 1) throw new ArgumentException($"the speed check needs at least 1 timed run, not {SpeedSamples}.", nameof(SpeedSamples));
        if (!Enum.IsDefined(Guard)) throw new ArgumentException($"unknown pair-sum guard {Guard}.", nameof(Guard));
        if (Guard == PairSumGuard.ReducedRangeActivations && Activations != QdqActivationType.U8)
            throw new ArgumentException("7-bit activations guard uint8 activations only: x86 kernels shift int8 activations to uint8, " +
                                        "so their codes still reach 255; use PairSafeWeights or Uint8Weights with int8 activations.", nameof(Guard));
    }
}
