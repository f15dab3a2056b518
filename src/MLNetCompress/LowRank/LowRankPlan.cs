using System.Globalization;
using MLNetCompress.Compression;

namespace MLNetCompress.LowRank;

/// <summary>What <see cref="LowRankPass"/> decided: the layers it splits (factors computed) and those it leaves, with reasons.</summary>
public sealed class LowRankPlan
{
    internal LowRankPlan(IReadOnlyList<LowRankLayer> layers, IReadOnlyList<string> skipped, IReadOnlyList<RankTrial>? trials = null, double? searchCosine = null)
    {
        Layers = layers;
        Skipped = skipped;
        Trials = trials ?? [];
        SearchCosine = searchCosine;
    }

    /// <summary>The rank search's trials (<see cref="LowRankOptions.MinCosine"/>): each layer alone at each rank tried; empty without a search.</summary>
    public IReadOnlyList<RankTrial> Trials { get; }

    /// <summary>The search's check: the mean output cosine of the model with all planned splits on the search rows; null without a search.</summary>
    public double? SearchCosine { get; }

    /// <summary>The layers to split, in graph order.</summary>
    public IReadOnlyList<LowRankLayer> Layers { get; }

    /// <summary>One line per layer left as it is, saying why.</summary>
    public IReadOnlyList<string> Skipped { get; }

    /// <summary>Weight parameters of the planned layers before.</summary>
    public long ParamsBefore => Layers.Sum(l => l.ParamsBefore);

    /// <summary>Weight parameters of the planned layers after.</summary>
    public long ParamsAfter => Layers.Sum(l => l.ParamsAfter);
}

/// <summary>One layer split alone at one rank by the rank search: what it saves and what it costs.</summary>
/// <param name="Weight">The layer's weight.</param>
/// <param name="RankRatio">The fraction of the full rank tried.</param>
/// <param name="Ranks">The rank (r1/r2 for Tucker-2).</param>
/// <param name="OriginalMs">Milliseconds of the whole layer, timed alone (fastest run).</param>
/// <param name="SplitMs">Milliseconds of the split layer, timed alone in the same run (fastest run).</param>
/// <param name="MeanCosine">Mean cosine of the model's outputs to the original's with only this split, on the search rows.</param>
/// <param name="Chosen">True for the rank the search kept for this layer.</param>
public sealed record RankTrial(string Weight, double RankRatio, IReadOnlyList<int> Ranks, double OriginalMs, double SplitMs, double MeanCosine, bool Chosen)
{
    /// <summary>Milliseconds saved by the split (negative: slower).</summary>
    public double SavedMs => OriginalMs - SplitMs;

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Weight} rank {string.Join("/", Ranks)} ({RankRatio:0.###}): {OriginalMs:0.000} -> {SplitMs:0.000} ms, output cosine {MeanCosine:0.00000}{(Chosen ? " (chosen)" : "")}");
}

/// <summary>One layer split into low-rank factors: the report row, and the factors to write.</summary>
public sealed class LowRankLayer
{
    internal LowRankLayer(string node, string output, string opType, string weight, long[] shape, string form,
        int[] ranks, long paramsBefore, long macsBefore, Factorization factorization, bool dataAware)
    {
        Node = node; Output = output; OpType = opType; Weight = weight; ShapeArray = shape; Form = form; RanksArray = ranks;
        ParamsBefore = paramsBefore; MacsBefore = macsBefore; Factorization = factorization; DataAware = dataAware;
    }

    /// <summary>The node split.</summary>
    public string Node { get; }

    /// <summary>Its op type: Conv, Gemm or MatMul.</summary>
    public string OpType { get; }

    /// <summary>The weight's value name.</summary>
    public string Weight { get; }

    /// <summary>The weight's shape.</summary>
    public IReadOnlyList<long> Shape => ShapeArray;

    /// <summary><c>matrix</c>, <c>channel</c>, <c>spatial</c> or <c>tucker</c>.</summary>
    public string Form { get; }

    /// <summary>The rank (two, r1 and r2, for Tucker-2).</summary>
    public IReadOnlyList<int> Ranks => RanksArray;

    /// <summary>Weight parameters before.</summary>
    public long ParamsBefore { get; }

    /// <summary>Parameters of the factors (the bias is not counted on either side).</summary>
    public long ParamsAfter => Factorization.ParamsAfter;

    /// <summary>Multiply–adds per output position before (per row for Gemm/MatMul, per output pixel for Conv).</summary>
    public long MacsBefore { get; }

    /// <summary>Multiply–adds per output position after (for spatial and Tucker forms assuming stride 1).</summary>
    public long MacsAfter => Factorization.MacsAfter;

    /// <summary>‖W − Ŵ‖_F / ‖W‖_F of the weight the factors multiply back to.</summary>
    public double RelativeError => Factorization.RelativeError;

    /// <summary>max |W − Ŵ|.</summary>
    public double MaxAbsError => Factorization.MaxAbsError;

    /// <summary>True when the factors were chosen on calibration data.</summary>
    public bool DataAware { get; }

    internal string Output { get; }

    internal long[] ShapeArray { get; }

    internal int[] RanksArray { get; }

    internal Factorization Factorization { get; }

    /// <summary>How the weight is stored after, in words.</summary>
    public string StorageAfter => string.Create(CultureInfo.InvariantCulture,
        $"{Form} rank {string.Join("/", RanksArray)}{(DataAware ? " (data-aware)" : "")}: {string.Join(" + ", Factorization.Factors.Select(f => "[" + string.Join(",", f.Dims) + "]"))}, " +
        $"{ParamsBefore}->{ParamsAfter} params, {MacsBefore}->{MacsAfter} MACs/pos, rel. error {RelativeError:G3}");

    /// <summary>The row for the compression report.</summary>
    public LayerChange ToLayerChange() =>
        new(Weight, OpType, "main", ShapeArray, "float", StorageAfter, 4 * ParamsBefore, 4 * ParamsAfter, MaxAbsError) { Ranks = RanksArray, ParamsAfter = ParamsAfter };

    /// <summary>One line: node, form, ranks, parameters, error.</summary>
    public override string ToString() => $"{Weight} ({OpType} '{Node}'): {StorageAfter}";
}
