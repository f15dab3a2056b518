using System.Text.Json.Serialization;
using MLNetCompress.Compression;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;

namespace MLNetCompress.Reporting;

/// <summary>
/// What one compression run did, layer by layer, and how the result compares with the original: the data behind
/// report.json, report.md and report.html (see <see cref="ReportWriter"/>). Build it with <see cref="Build(byte[], byte[], CompressionResult, EvalReport?, ReportOptions?)"/>.
/// The JSON field names are fixed by attributes and do not follow renames in code.
/// </summary>
public sealed record CompressionReport
{
    /// <summary>The JSON schema tag of this report's shape.</summary>
    public const string SchemaVersion = "mlnet-compress-report/1";

    /// <summary>Always <see cref="SchemaVersion"/>.</summary>
    [JsonPropertyName("schema")]
    public string Schema { get; init; } = SchemaVersion;

    /// <summary>The input model file, or null when it was given as bytes.</summary>
    [JsonPropertyName("input")]
    public string? InputPath { get; init; }

    /// <summary>The model written.</summary>
    [JsonPropertyName("output")]
    public required string OutputPath { get; init; }

    /// <summary>Size of the input on disk, external data included.</summary>
    [JsonPropertyName("bytesBefore")]
    public required long BytesBefore { get; init; }

    /// <summary>Size of the output on disk, external data included.</summary>
    [JsonPropertyName("bytesAfter")]
    public required long BytesAfter { get; init; }

    /// <summary>Bytes before over bytes after (4 means four times smaller).</summary>
    [JsonPropertyName("compressionRatio")]
    public double CompressionRatio => BytesAfter == 0 ? double.NaN : (double)BytesBefore / BytesAfter;

    /// <summary>The model's size after each stage: the original, each recipe step (or just the written file), and the
    /// packed container when one was written, each with its ratio to the original.</summary>
    [JsonPropertyName("stages")]
    public IReadOnlyList<SizeStage> Stages { get; init; } = [];

    /// <summary>Wall time of the compression run in seconds.</summary>
    [JsonPropertyName("elapsedSeconds")]
    public double ElapsedSeconds { get; init; }

    /// <summary>What each pass did, in order.</summary>
    [JsonPropertyName("passes")]
    public required IReadOnlyList<PassSummary> Passes { get; init; }

    /// <summary>One row per weight changed, in the order the passes first touched them.</summary>
    [JsonPropertyName("layers")]
    public required IReadOnlyList<LayerReport> Layers { get; init; }

    /// <summary>The verifier's figures on the probe rows, checked before the model was written.</summary>
    [JsonPropertyName("verification")]
    public required VerificationReport Verification { get; init; }

    /// <summary>The evaluation against the original on data (fidelity, accuracy, latency), when one was run.</summary>
    [JsonPropertyName("evaluation")]
    public EvaluationReport? Evaluation { get; init; }

    /// <summary>Things the report could not show, and why (e.g. a weight that is no longer one tensor).</summary>
    [JsonPropertyName("notes")]
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>
    /// Builds the report of a run from the original and the compressed model (as bytes), the run's result and,
    /// optionally, an evaluation of the two. Each changed weight is read back from both models as the consuming
    /// op sees it — expanded from int8 storage, codebooks, QDQ or sparse initializers by ONNX Runtime — to count
    /// its zeros, bin its values and measure how far they moved.
    /// </summary>
    /// <param name="original">The model that was compressed.</param>
    /// <param name="compressed">The model that was written.</param>
    /// <param name="result">What <see cref="ModelCompressor"/> returned for the run.</param>
    /// <param name="comparison">An evaluation of the compressed model against the original, or null.</param>
    /// <param name="options">Histogram bins and read limits.</param>
    public static CompressionReport Build(byte[] original, byte[] compressed, CompressionResult result, EvalReport? comparison = null, ReportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(original);
        ArgumentNullException.ThrowIfNull(compressed);
        options ??= new ReportOptions();
        return Build(ModelGraph.FromBytes(original, options.ReadOriginal), ModelGraph.FromBytes(compressed, options.ReadCompressed), result, comparison, options);
    }

    /// <summary>Builds the report of a run whose input was a file: reads <see cref="CompressionResult.InputPath"/> and <see cref="CompressionResult.OutputPath"/> (with their external data).</summary>
    /// <param name="result">What <see cref="ModelCompressor"/> returned for the run.</param>
    /// <param name="comparison">An evaluation of the compressed model against the original, or null.</param>
    /// <param name="options">Histogram bins.</param>
    /// <exception cref="ArgumentException">The run's input was given as bytes (use the overload that takes them).</exception>
    public static CompressionReport Build(CompressionResult result, EvalReport? comparison = null, ReportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.InputPath is null)
            throw new ArgumentException("the run's input was given as bytes; pass the original bytes to Build(original, compressed, result).", nameof(result));
        options ??= new ReportOptions();
        return Build(ModelGraph.Load(result.InputPath, options.ReadOriginal), ModelGraph.Load(result.OutputPath, options.ReadCompressed), result, comparison, options);
    }

    private static CompressionReport Build(ModelGraph original, ModelGraph compressed, CompressionResult result, EvalReport? comparison, ReportOptions options)
    {
        ArgumentNullException.ThrowIfNull(result);
        var notes = new List<string>();

        // A weight several passes changed (pruned, then clustered, then stored sparsely) is one row: storage and
        // bytes from its first and last change, values from the two models.
        var groups = result.Layers
            .GroupBy(l => (l.Graph, l.Weight))
            .Select(g => g.ToList())
            .ToList();
        var requests = groups.Select(g => new EffectiveWeights.Request(g[0].Graph, g[0].Weight, Elements(g[0].Shape))).ToList();
        var before = EffectiveWeights.Read(original, null, requests, notes);
        var after = EffectiveWeights.Read(compressed, original, requests, notes);

        var layers = new List<LayerReport>(groups.Count);
        for (int k = 0; k < groups.Count; k++)
        {
            var changes = groups[k];
            var request = requests[k];
            before.TryGetValue(request, out var b);
            after.TryGetValue(request, out var a);
            var ranks = changes.LastOrDefault(c => c.Ranks is not null)?.Ranks;
            if (b is null) notes.Add($"{request.Weight}: not found as a float tensor in the original model; no histogram");
            else if (a is null)
                notes.Add(ranks is null
                    ? $"{request.Weight}: its value in the compressed model could not be read back; histogram before only"
                    : $"{request.Weight}: split into low-rank factors, no single tensor after; histogram before only, error as the pass measured it");
            layers.Add(Layer(changes, b, a, ranks, options.HistogramBins));
        }

        return new CompressionReport
        {
            InputPath = result.InputPath,
            OutputPath = result.OutputPath,
            BytesBefore = result.BytesBefore,
            BytesAfter = result.BytesAfter,
            Stages = result.Stages.Count > 0 ? result.Stages :
            [
                SizeStage.Of(SizeStage.OriginalName, result.BytesBefore, result.BytesBefore, result.InputPath is null ? null : Path.GetFileName(result.InputPath)),
                SizeStage.Of(SizeStage.WrittenName, result.BytesAfter, result.BytesBefore, Path.GetFileName(result.OutputPath)),
            ],
            ElapsedSeconds = result.Elapsed.TotalSeconds,
            Passes = result.Passes.Select(p => new PassSummary
            {
                Name = p.PassName,
                Modified = p.Modified,
                Changes = p.Changes.Count,
                Skipped = p.Skipped.ToList(),
            }).ToList(),
            Layers = layers,
            Verification = new VerificationReport
            {
                ProbeRows = result.Verification.ProbeRows,
                MinCosine = result.Verification.MinCosine,
                MeanCosine = result.Verification.MeanCosine,
                MaxAbsDiff = result.Verification.MaxAbsDiff,
                Summary = result.Verification.Summary,
            },
            Evaluation = comparison is null ? null : EvaluationReport.From(comparison),
            Notes = notes,
        };
    }

    private static LayerReport Layer(List<LayerChange> changes, EffectiveWeight? before, EffectiveWeight? after, IReadOnlyList<int>? ranks, int bins)
    {
        var first = changes[0];
        var last = changes[^1];
        long elements = Elements(first.Shape);
        long? paramsAfter = changes.LastOrDefault(c => c.ParamsAfter is not null)?.ParamsAfter;
        double maxAbs = changes.Max(c => c.MaxAbsError);
        double? relative = null;
        string errorSource = "pass";
        if (before is not null && after is not null)
        {
            (maxAbs, relative) = Difference(before.Values, after.Values);
            errorSource = "weights";
        }
        return new LayerReport
        {
            Weight = first.Weight,
            OpType = first.OpType,
            Graph = first.Graph,
            Shape = first.Shape.ToList(),
            StorageBefore = first.StorageBefore,
            StorageAfter = last.StorageAfter,
            Steps = changes.Select(c => c.StorageAfter).ToList(),
            BytesBefore = first.BytesBefore,
            BytesAfter = last.BytesAfter,
            Params = elements,
            ParamsAfter = paramsAfter ?? elements,
            SparsityBefore = before is null ? null : ZeroFraction(before.Values),
            SparsityAfter = after is null ? null : ZeroFraction(after.Values),
            Clusters = after?.Clusters,
            Bits = after?.Bits,
            BitsPerWeight = elements == 0 ? 0 : 8.0 * last.BytesAfter / elements,
            Ranks = ranks?.ToList(),
            MaxAbsError = maxAbs,
            RelativeError = relative,
            ErrorSource = errorSource,
            Histogram = before is null ? null : WeightHistogram.Of(before.Values, after is null ? [] : after.Values, bins),
            FloatMs = changes.LastOrDefault(c => c.FloatMs is not null)?.FloatMs,
            CompressedMs = changes.LastOrDefault(c => c.CompressedMs is not null)?.CompressedMs,
        };
    }

    private static long Elements(IReadOnlyList<long> shape)
    {
        long n = 1;
        foreach (long d in shape) n *= Math.Max(d, 0);
        return n;
    }

    /// <summary>Share of exact zeros (−0.0 included).</summary>
    internal static double ZeroFraction(ReadOnlySpan<float> values) =>
        values.Length == 0 ? 0 : (double)values.Count(0f) / values.Length;

    /// <summary>max |a − b| and ‖a − b‖ / ‖a‖.</summary>
    private static (double MaxAbs, double? Relative) Difference(float[] a, float[] b)
    {
        double max = 0, diff = 0, norm = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = (double)b[i] - a[i];
            max = Math.Max(max, Math.Abs(d));
            diff += d * d;
            norm += (double)a[i] * a[i];
        }
        return (max, norm == 0 ? (diff == 0 ? 0 : null) : Math.Sqrt(diff / norm));
    }
}

/// <summary>How <see cref="CompressionReport"/> is built.</summary>
public sealed record ReportOptions
{
    /// <summary>Bins of each weight histogram (default 48).</summary>
    public int HistogramBins { get; init; } = WeightHistogram.DefaultBins;

    /// <summary>Limits for reading the original model (its folder locates external data of a model given as bytes).</summary>
    public ModelReadOptions? ReadOriginal { get; init; }

    /// <summary>Limits for reading the compressed model.</summary>
    public ModelReadOptions? ReadCompressed { get; init; }
}

/// <summary>What one pass did.</summary>
public sealed record PassSummary
{
    /// <summary>The pass's name.</summary>
    [JsonPropertyName("name")]
    public required string Name { get; init; }

    /// <summary>True when it changed the model.</summary>
    [JsonPropertyName("modified")]
    public required bool Modified { get; init; }

    /// <summary>Number of changes it made.</summary>
    [JsonPropertyName("changes")]
    public required int Changes { get; init; }

    /// <summary>What it left alone, one line each, with the reason.</summary>
    [JsonPropertyName("skipped")]
    public required IReadOnlyList<string> Skipped { get; init; }
}

/// <summary>One changed weight: storage, size, structure and error, and the histogram of its values before and after.</summary>
public sealed record LayerReport
{
    /// <summary>The weight's value name (text from the model: untrusted).</summary>
    [JsonPropertyName("weight")]
    public required string Weight { get; init; }

    /// <summary>The op that reads it as a weight.</summary>
    [JsonPropertyName("op")]
    public required string OpType { get; init; }

    /// <summary>The graph it lives in: <c>main</c> or a subgraph path.</summary>
    [JsonPropertyName("graph")]
    public required string Graph { get; init; }

    /// <summary>Its shape.</summary>
    [JsonPropertyName("shape")]
    public required IReadOnlyList<long> Shape { get; init; }

    /// <summary>How it was stored before the first change.</summary>
    [JsonPropertyName("storageBefore")]
    public required string StorageBefore { get; init; }

    /// <summary>How it is stored after the last change.</summary>
    [JsonPropertyName("storageAfter")]
    public required string StorageAfter { get; init; }

    /// <summary>Each change's resulting storage, in pass order.</summary>
    [JsonPropertyName("steps")]
    public required IReadOnlyList<string> Steps { get; init; }

    /// <summary>Payload bytes before.</summary>
    [JsonPropertyName("bytesBefore")]
    public required long BytesBefore { get; init; }

    /// <summary>Payload bytes after, everything that replaced it included.</summary>
    [JsonPropertyName("bytesAfter")]
    public required long BytesAfter { get; init; }

    /// <summary>Weight parameters before (the product of the shape).</summary>
    [JsonPropertyName("params")]
    public required long Params { get; init; }

    /// <summary>Parameters after: the factors' for a low-rank split, else the same count.</summary>
    [JsonPropertyName("paramsAfter")]
    public required long ParamsAfter { get; init; }

    /// <summary>Share of exact zeros in the original values; null when they could not be read.</summary>
    [JsonPropertyName("sparsityBefore")]
    public double? SparsityBefore { get; init; }

    /// <summary>Share of exact zeros in the values the compressed model computes; null when there is no single tensor after.</summary>
    [JsonPropertyName("sparsityAfter")]
    public double? SparsityAfter { get; init; }

    /// <summary>Centroids of the codebook the weight is gathered from after (weight sharing), else null.</summary>
    [JsonPropertyName("clusters")]
    public int? Clusters { get; init; }

    /// <summary>Bits per element of the integer codes the weight is expanded from (quantized values or codebook indices), else null.</summary>
    [JsonPropertyName("bits")]
    public int? Bits { get; init; }

    /// <summary>Stored bits per original parameter, everything included: 8 × bytes after / parameters.</summary>
    [JsonPropertyName("bitsPerWeight")]
    public required double BitsPerWeight { get; init; }

    /// <summary>Ranks of a low-rank split (two for Tucker-2), else null.</summary>
    [JsonPropertyName("ranks")]
    public IReadOnlyList<int>? Ranks { get; init; }

    /// <summary>Largest |w_after − w_before|.</summary>
    [JsonPropertyName("maxAbsError")]
    public required double MaxAbsError { get; init; }

    /// <summary>‖w_after − w_before‖ / ‖w_before‖ when both values could be read; null otherwise.</summary>
    [JsonPropertyName("relativeError")]
    public double? RelativeError { get; init; }

    /// <summary><c>weights</c> when the errors were measured on the two models' values, <c>pass</c> when taken from what the passes reported.</summary>
    [JsonPropertyName("errorSource")]
    public required string ErrorSource { get; init; }

    /// <summary>Histograms of the values before and after over the same bins; null when the original values could not be read.</summary>
    [JsonPropertyName("histogram")]
    public WeightHistogram? Histogram { get; init; }

    /// <summary>The layer alone in ONNX Runtime, float, on the CPU that compressed it (milliseconds; the int8 speed check); null when not timed.</summary>
    [JsonPropertyName("floatMs")]
    public double? FloatMs { get; init; }

    /// <summary>The layer alone as written (int8 kernel plus the conversions its neighbours force on it), milliseconds; null when not timed.</summary>
    [JsonPropertyName("compressedMs")]
    public double? CompressedMs { get; init; }
}

/// <summary>The verifier's figures on the probe rows.</summary>
public sealed record VerificationReport
{
    /// <summary>Probe rows compared.</summary>
    [JsonPropertyName("probeRows")]
    public required long ProbeRows { get; init; }

    /// <summary>Lowest per-row cosine of any output.</summary>
    [JsonPropertyName("minCosine")]
    public required double MinCosine { get; init; }

    /// <summary>Mean per-row cosine over the outputs.</summary>
    [JsonPropertyName("meanCosine")]
    public required double MeanCosine { get; init; }

    /// <summary>Largest absolute difference of any output element.</summary>
    [JsonPropertyName("maxAbsDiff")]
    public required double MaxAbsDiff { get; init; }

    /// <summary>The verifier's one-line verdict.</summary>
    [JsonPropertyName("summary")]
    public required string Summary { get; init; }
}

/// <summary>The eval table: the compressed model against the original on data.</summary>
public sealed record EvaluationReport
{
    /// <summary>The data, described.</summary>
    [JsonPropertyName("data")]
    public required string Data { get; init; }

    /// <summary>Rows evaluated.</summary>
    [JsonPropertyName("rows")]
    public required long Rows { get; init; }

    /// <summary>Rows per batch.</summary>
    [JsonPropertyName("batchSize")]
    public required int BatchSize { get; init; }

    /// <summary>Median latency of the original per batch, in milliseconds.</summary>
    [JsonPropertyName("latencyBeforeMs")]
    public required double LatencyBeforeMs { get; init; }

    /// <summary>Median latency of the compressed model per batch, in milliseconds.</summary>
    [JsonPropertyName("latencyAfterMs")]
    public required double LatencyAfterMs { get; init; }

    /// <summary>After over before (below 1: faster).</summary>
    [JsonPropertyName("latencyRatio")]
    public required double LatencyRatio { get; init; }

    /// <summary>Timed batches per model.</summary>
    [JsonPropertyName("latencySamples")]
    public required int LatencySamples { get; init; }

    /// <summary>Fidelity per output.</summary>
    [JsonPropertyName("outputs")]
    public required IReadOnlyList<OutputEvaluation> Outputs { get; init; }

    /// <summary>The eval table of a <see cref="ModelComparer"/> run.</summary>
    public static EvaluationReport From(EvalReport r)
    {
        ArgumentNullException.ThrowIfNull(r);
        return new EvaluationReport
        {
            Data = r.Data,
            Rows = r.Rows,
            BatchSize = r.BatchSize,
            LatencyBeforeMs = r.BaselineMedianMs,
            LatencyAfterMs = r.CandidateMedianMs,
            LatencyRatio = r.LatencyRatio,
            LatencySamples = r.LatencySamples,
            Outputs = r.Outputs.Select(o => new OutputEvaluation
            {
                Name = o.Name,
                MeanCosine = o.MeanCosine,
                MinCosine = o.MinCosine,
                MaxAbsDiff = o.MaxAbsDiff,
                Top1Agreement = o.Top1Agreement,
                AccuracyBefore = o.BaselineAccuracy,
                AccuracyAfter = o.CandidateAccuracy,
            }).ToList(),
        };
    }
}

/// <summary>Fidelity of one output.</summary>
public sealed record OutputEvaluation
{
    /// <summary>The output's name (text from the model: untrusted).</summary>
    [JsonPropertyName("name")]
    public required string Name { get; init; }

    /// <summary>Mean per-row cosine with the original.</summary>
    [JsonPropertyName("meanCosine")]
    public required double MeanCosine { get; init; }

    /// <summary>Lowest per-row cosine with the original.</summary>
    [JsonPropertyName("minCosine")]
    public required double MinCosine { get; init; }

    /// <summary>Largest absolute difference of any element.</summary>
    [JsonPropertyName("maxAbsDiff")]
    public required double MaxAbsDiff { get; init; }

    /// <summary>Share of rows whose argmax agrees with the original's, for class scores.</summary>
    [JsonPropertyName("top1Agreement")]
    public double? Top1Agreement { get; init; }

    /// <summary>Accuracy of the original on the labels, when the data has labels.</summary>
    [JsonPropertyName("accuracyBefore")]
    public double? AccuracyBefore { get; init; }

    /// <summary>Accuracy of the compressed model on the labels, when the data has labels.</summary>
    [JsonPropertyName("accuracyAfter")]
    public double? AccuracyAfter { get; init; }
}
