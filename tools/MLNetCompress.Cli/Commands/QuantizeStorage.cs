using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using MLNetCompress.Cli.Output;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Quantization.Storage;
using MLNetCompress.Runtime;

namespace MLNetCompress.Cli.Commands;

/// <summary>The options of <c>quantize</c> that the storage path reads, as the command parsed them.</summary>
internal sealed record QuantizeStorageRun(string Model, string Output, string Calibration, string? Eval, int EvalRows, string[] Exclude,
    double MinCosine, string? Vocab, string? ReportDir, bool PerChannel);

/// <summary>
/// <c>quantize --mode storage --weights int8|uint8|int4|uint4|int2|binary [--block-size N] [--per-channel]</c>: weights stored in fewer bits,
/// packed, and expanded at load by nodes ONNX Runtime folds (see <see cref="WeightStoragePass"/>): a smaller file that runs at the
/// float model's speed. Kept beside <see cref="QuantizeCommand"/> so that the command's file holds only the registration and one branch.
/// </summary>
internal sealed class QuantizeStorageOptions
{
    // The options of quantize that mean something to the storage path; any other given explicitly is an error.
    private static readonly HashSet<string> Applicable = new(StringComparer.Ordinal)
    {
        "--output", "--calibration", "--eval", "--eval-rows", "--exclude", "--min-cosine", "--vocab", "--report",
        "--mode", "--weights", "--block-size", "--per-channel", "--clip",
    };

    private readonly Option<string?> _weights = new("--weights")
    {
        Description = "storage: how each weight value is stored: int8 (default), int4 (two per byte), int2 (four per byte, values -1/0/1), " +
                      "binary (one bit: sign x the mean |w| of the channel or block, as in XNOR-Net), or the asymmetric uint8 and uint4 " +
                      "(two per byte): codes 0..255 or 0..15 over each group's min..max range with a zero point, the range always holding 0 " +
                      "so that exact zeros stay exact. One scale (and offset) per tensor, per output " +
                      "channel with --per-channel, or per block of --block-size values along the reduction axis.",
        HelpName = "TYPE",
    };

    private readonly Option<bool> _clip = new("--clip")
    {
        Description = "storage, int8/int4/int2: choose each scale for the smallest squared error of its channel or block, clipping the " +
                      "largest values, instead of max|w|/qmax. Makes int2 usable (its -1/0/1 levels otherwise round most weights to 0).",
    };

    /// <summary>The options, to add to the command.</summary>
    public IEnumerable<Option> All => [_weights, _clip];

    /// <summary>
    /// True when <c>--mode storage</c> was given. <c>--weights</c> or <c>--clip</c> without it is an error (they would do nothing).
    /// </summary>
    /// <exception cref="InputException"><c>--weights</c> or <c>--clip</c> was given for another mode.</exception>
    public bool Requested(ParseResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        bool storage = string.Equals(r.GetValue<string>("--mode"), "storage", StringComparison.OrdinalIgnoreCase);
        foreach (var option in All)
            if (!storage && r.GetResult(option) is OptionResult { Implicit: false })
                throw new InputException($"{option.Name} applies to --mode storage; add --mode storage or drop {option.Name}");
        return storage;
    }

    /// <summary>Runs the storage path: checks, stores, verifies, writes, times against the original and prints the result.</summary>
    /// <exception cref="InputException">An option is bad or does not apply, the model is too old or already quantized, or verification failed.</exception>
    public async Task<int> RunAsync(CliContext ctx, ParseResult r, QuantizeStorageRun s, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ArgumentNullException.ThrowIfNull(r);
        ArgumentNullException.ThrowIfNull(s);
        foreach (var option in r.CommandResult.Command.Options)
            if (!Applicable.Contains(option.Name) && r.GetResult(option) is OptionResult { Implicit: false })
                throw new InputException($"{option.Name} does not apply to --mode storage; drop it");
        string weights = r.GetValue(_weights) ?? "int8";
        if (!StorageFormats.TryParse(weights, out var format))
            throw new InputException($"unknown --weights '{weights}' for --mode storage; expected int8, uint8, int4, uint4, int2 or binary");
        bool clip = r.GetValue(_clip);
        if (clip && format == StorageFormat.Binary)
            throw new InputException("--clip applies to --weights int8, int4 and int2; binary's scale is already the mean |w| (drop --clip)");
        if (clip && format.IsAsymmetric())
            throw new InputException($"--clip applies to --weights int8, int4 and int2; {format.Name()} already fits each group's min..max range with a zero point (drop --clip)");
        int? blockSize = r.GetValue<int?>("--block-size");
        if (blockSize is int b && (b < 8 || b % 8 != 0))
            throw new InputException($"--block-size for --mode storage takes a multiple of 8 (16, 32, 64, ...), not {b}");
        ModelFiles.Require(s.Model, "MODEL");
        CommonOptions.CheckMinCosine(s.MinCosine);
        CommonOptions.CheckReport(s.ReportDir);

        // Data specs are checked before anything is computed: a typo fails fast and nothing is written.
        var inputs = ModelFiles.Inputs(s.Model, RuntimeOptions.Default);
        var specOptions = new DataSpecOptions { ModelPath = s.Model, VocabPath = s.Vocab };
        var calibrationFeed = DataSpec.Parse(s.Calibration, inputs, specOptions);
        var evalFeed = s.Eval is null ? calibrationFeed : DataSpec.Parse(s.Eval, inputs, specOptions);

        var graph = ModelGraph.Load(s.Model);
        if (QuantizedModelDetector.Describe(graph) is { } already)
            throw new InputException($"{already.TrimEnd('.')}; nothing was written");
        if (graph.OnnxOpset < WeightStoragePass.MinOpset)
            throw new InputException($"the model uses ai.onnx opset {graph.OnnxOpset}; --mode storage needs opset {WeightStoragePass.MinOpset} " +
                                     $"(Mul broadcasting the scales); upgrade it first: mlnet-compress upgrade MODEL --opset 13 -o UPGRADED");
        var pass = new WeightStoragePass(new WeightStorageOptions
        {
            Format = format,
            PerChannel = s.PerChannel || blockSize is not null,
            BlockSize = blockSize,
            Clip = clip,
            ExcludeNodes = s.Exclude.ToHashSet(StringComparer.Ordinal),
        });
        var expansion = pass.ExpansionFor(graph.OnnxOpset, graph.IrVersion);
        var compression = new CompressionOptions
        {
            OutputPath = s.Output,
            Probes = evalFeed,
            Verification = new VerifyOptions { MinCosine = s.MinCosine },
        };
        CompressionResult result;
        try
        {
            result = await ProgressBar.RunAsync(ctx, "storing weights", bar =>
            {
                var progress = bar.Reporter<CompressionProgress>((p, e) =>
                    p.Update($"{e.Stage.ToString().ToLowerInvariant()}: {e.Step}", e.Done, e.Total > 0 ? e.Total : null));
                return ModelCompressor.Compress(s.Model, [pass], compression, progress, ct);
            }, ct).ConfigureAwait(false);
        }
        catch (CompressionException e) when (e.Verification is not null)
        {
            // Fewer bits move the outputs further; the gate is the user's to lower.
            throw new InputException($"{e.Message.TrimEnd('.')}; {format.Name()} weights move the outputs this far — " +
                                     "pass --min-cosine C to accept it, or keep more bits (--weights, --block-size)", e);
        }

        // Storage must not cost speed; measured, not assumed: both models timed interleaved on the same data.
        var report = await ProgressBar.RunAsync(ctx, "timing against the original", _ =>
            ModelComparer.Compare(s.Model, result.OutputPath, evalFeed, new EvalOptions { MaxRows = s.EvalRows, BatchSize = 16 }, null, ct), ct)
            .ConfigureAwait(false);
        var doc = DemoCommand.ToDocument(result);
        var o = report.Outputs[0];
        string ratio = report.LatencyRatio.ToString("0.00", CultureInfo.InvariantCulture);
        string grouping = (blockSize is int bs ? $"blocks of {bs} along the reduction axis" : s.PerChannel ? "per output channel" : "per tensor")
                          + (clip ? ", clipped for the smallest squared error" : "");
        string how = expansion switch
        {
            StorageExpansion.CastInt4 => "ONNX int4 tensors cast to float",
            StorageExpansion.CastInt8 => "int8 tensors cast to float",
            StorageExpansion.CastUInt8 => "uint8 tensors cast to float, offsets added after the scales",
            StorageExpansion.CastUInt4 => "ONNX uint4 tensors cast to float, offsets added after the scales",
            _ => $"packed bytes unpacked by a lookup-table Gather (opset {graph.OnnxOpset})" + (format.IsAsymmetric() ? ", offsets added after the scales" : ""),
        };
        doc.Fields(
            ("method", $"storage: weights {format.Name()}, scales {grouping}; {how}, folded by ONNX Runtime when the session is created"),
            ("latency ratio", $"{ratio}x of the original ({report.CandidateMedianMs.ToString("0.###", CultureInfo.InvariantCulture)} ms vs {report.BaselineMedianMs.ToString("0.###", CultureInfo.InvariantCulture)} ms per batch of {report.BatchSize}, median of {report.LatencySamples} interleaved runs on {report.Data})"),
            ("fidelity", $"cosine {o.MeanCosine.ToString("0.0000", CultureInfo.InvariantCulture)}" +
                         (o.Top1Agreement is double t ? $", top-1 agreement {t.ToString("0.0%", CultureInfo.InvariantCulture)}" : "") +
                         (o.CandidateAccuracy is double ca && o.BaselineAccuracy is double ba
                             ? $", accuracy {ba.ToString("0.0%", CultureInfo.InvariantCulture)} -> {ca.ToString("0.0%", CultureInfo.InvariantCulture)}" : "")));
        var notes = new List<string> { "storage makes the file smaller, not faster: ONNX Runtime computes the float weights once at load and runs the float kernels." };
        if (!result.Passes.Any(p => p.Modified))
            notes.Add("no weight was stored (see Skipped); the output is the original model.");
        // A busy machine moves the ratio by several percent either way; beyond this the expansion did not fold and the user must hear of it.
        if (report.LatencyRatio > 1.25)
        {
            notes.Add($"WARNING: the stored model took {ratio}x the original's time on this machine; the expansion should fold at load.");
            if (!ctx.Quiet) ctx.Err.WriteLine($"warning: the stored model is slower than the original ({ratio}x its latency).");
        }
        doc.Notes("Notes", notes);
        ctx.Render(doc);
        await CommonOptions.WriteReportAsync(ctx, s.ReportDir, result, evalFeed, report, ct).ConfigureAwait(false);
        return ErrorReporter.Success;
    }
}
