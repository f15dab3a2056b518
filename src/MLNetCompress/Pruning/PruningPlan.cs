using System.Globalization;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;

namespace MLNetCompress.Pruning;

/// <summary>What <see cref="MagnitudePruningPass"/> decided: the pruned values of each weight, and what it left alone.</summary>
public sealed class PruningPlan
{
    internal PruningPlan(IReadOnlyList<PrunedLayer> layers, IReadOnlyList<string> skipped, float? globalThreshold, SensitivityProfile? sensitivity = null)
    {
        Layers = layers;
        Skipped = skipped;
        GlobalThreshold = globalThreshold;
        Sensitivity = sensitivity;
    }

    /// <summary>The pruned weights, in graph order.</summary>
    public IReadOnlyList<PrunedLayer> Layers { get; }

    /// <summary>One line per weight left alone, saying why.</summary>
    public IReadOnlyList<string> Skipped { get; }

    /// <summary>The one magnitude threshold of a global run (values at or below it were candidates), or null.</summary>
    public float? GlobalThreshold { get; }

    /// <summary>The measured curves of a sensitivity allocation (and what measuring cost), or null.</summary>
    public SensitivityProfile? Sensitivity { get; }

    /// <summary>Values in the pruned weights.</summary>
    public long Elements => Layers.Sum(l => l.Elements);

    /// <summary>Zeros in the pruned weights after pruning.</summary>
    public long Zeros => Layers.Sum(l => l.Zeros);

    /// <summary>Fraction of zeros over all pruned weights.</summary>
    public double Sparsity => Elements == 0 ? 0 : (double)Zeros / Elements;
}

/// <summary>One pruned weight: its sparsity before and after, the threshold used and the values it will hold.</summary>
public sealed class PrunedLayer
{
    internal PrunedLayer(WeightSite site, float[] values, long zerosBefore, float threshold, NMPattern? pattern, float maxAbsPruned,
        double? sensitivity = null)
    {
        Sensitivity = sensitivity;
        Site = site;
        Values = values;
        ZerosBefore = zerosBefore;
        Zeros = MagnitudeSelection.CountZeros(values);
        Threshold = threshold;
        Pattern = pattern;
        MaxAbsPruned = maxAbsPruned;
    }

    internal WeightSite Site { get; }

    internal float[] Values { get; }

    /// <summary>The weight's value name (kept).</summary>
    public string Name => Site.Name;

    /// <summary>The op that reads it as a weight (the first such node).</summary>
    public string OpType => Site.Consumer.OpType;

    /// <summary>The graph it is defined in.</summary>
    public string Graph => Site.Scope.Path;

    /// <summary>Its shape.</summary>
    public IReadOnlyList<long> Shape => Site.Dims;

    /// <summary>Number of values.</summary>
    public long Elements => Values.LongLength;

    /// <summary>Exact zeros it held before.</summary>
    public long ZerosBefore { get; }

    /// <summary>Exact zeros it holds after.</summary>
    public long Zeros { get; }

    /// <summary>Fraction of zeros after.</summary>
    public double Sparsity => Elements == 0 ? 0 : (double)Zeros / Elements;

    /// <summary>The magnitude threshold of the criterion (NaN when only a pattern pruned it).</summary>
    public float Threshold { get; }

    /// <summary>The N:M pattern it follows, or null.</summary>
    public NMPattern? Pattern { get; }

    /// <summary>The largest magnitude set to zero.</summary>
    public float MaxAbsPruned { get; }

    /// <summary>With a sensitivity allocation: the measured damage (relative output MSE with this layer alone pruned)
    /// at its chosen sparsity, interpolated on its curve; otherwise null.</summary>
    public double? Sensitivity { get; }

    /// <summary>The row for the compression report (pruning alone keeps the dense bytes; see SparseStoragePass).</summary>
    public LayerChange ToLayerChange()
    {
        string type = OnnxDataTypes.Name(Site.DataType);
        long bytes = OnnxDataTypes.ByteCount(Site.DataType, Elements);
        return new LayerChange(Name, OpType, Graph, Site.Dims, type, $"{type}, {Describe()}", bytes, bytes, MaxAbsPruned);
    }

    private string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{Sparsity:0.0%} zeros{(Pattern is { } p ? $" ({p})" : "")}{(Sensitivity is double d ? $", sensitivity {d:0.00e+0}" : "")}");

    /// <summary>One line: name, op, shape, sparsity before and after, threshold.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Name} ({OpType} in {Graph}): [{string.Join(",", Site.Dims)}] {(double)ZerosBefore / Math.Max(1, Elements):0.0%} -> {Describe()}" +
        $"{(float.IsNaN(Threshold) ? "" : $", threshold {Threshold:G4}")}");
}
