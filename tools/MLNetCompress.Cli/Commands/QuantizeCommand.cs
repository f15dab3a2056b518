using System.CommandLine;
using System.Globalization;
using MLNetCompress.Calibration;
using MLNetCompress.Cli.Output;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.Budget;
using MLNetCompress.Quantization.Dynamic;
using MLNetCompress.Quantization.KernelSafety;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Runtime;

namespace MLNetCompress.Cli.Commands;

/// <summary>
/// <c>quantize MODEL -o OUT --calibration SPEC [--method minmax|percentile|entropy|mse] [--per-channel]
/// [--activations u8|s8] [--eval SPEC]</c>: static QDQ int8 (weights and activations) after preparation and, when
/// needed, an opset upgrade; verifies, writes, then measures the latency ratio against the original, interleaved, and
/// says plainly when the result is not faster.
/// </summary>
internal static class QuantizeCommand
{
    public static Command Create(Func<ParseResult, CliContext> context)
    {
        var model = new Argument<string>("MODEL") { Description = "The float .onnx model to quantize (only read)." };
        var output = new Option<string>("--output", "-o") { Description = "The quantized model to write.", Required = true, HelpName = "OUT" };
        var calibration = new Option<string>("--calibration", "-c")
        {
            Description = $"Calibration data (a data spec: {DataSpec.Expected}); also the verification probes and, without --eval, the timing data.",
            Required = true,
            HelpName = "SPEC",
        };
        var method = new Option<string>("--method")
        {
            Description = "How activation ranges are chosen: minmax (default), percentile (99.99), entropy (KL, TensorRT-style) or mse.",
            DefaultValueFactory = _ => "minmax",
            HelpName = "METHOD",
        };
        var perChannel = new Option<bool>("--per-channel")
        {
            Description = "One weight scale per output channel: the default in static and dynamic modes (needs opset 13; the model is " +
                          "upgraded if older); in storage mode it is asked for with this flag.",
        };
        var perTensor = new Option<bool>("--per-tensor") { Description = "Static and dynamic modes: one weight scale per weight instead of per output channel." };
        var activations = new Option<string>("--activations")
        {
            Description = "Activation type: u8 or uint8 (default, U8S8: uint8 activations, int8 weights) or s8 or int8 (S8S8).",
            DefaultValueFactory = _ => "u8",
            HelpName = "TYPE",
        };
        activations.AcceptOnlyFromAmong("u8", "s8", "uint8", "int8");
        var percentile = new Option<double?>("--percentile") { Description = "Upper percentile for --method percentile (default 99.99).", HelpName = "P" };
        var rows = EvalCommand.PositiveInt("--calibration-rows", "Calibration rows to run (default 128).", "N");
        var eval = new Option<string?>("--eval") { Description = "Data to measure latency and fidelity on (default: the calibration data).", HelpName = "SPEC" };
        var evalRows = EvalCommand.PositiveInt("--eval-rows", "Rows to time on (default 256).", "N");
        var exclude = new Option<string[]>("--exclude") { Description = "Node names to leave in float.", HelpName = "NODES", AllowMultipleArgumentsPerToken = true };
        var minCosine = CommonOptions.MinCosine("the probes", 0.99);
        var vocab = new Option<string?>("--vocab") { Description = "A BERT vocab.txt for text: data.", HelpName = "FILE" };
        var dynamic = new Option<bool>("--dynamic")
        {
            Description = "Dynamic quantization instead, for transformers: MatMul weights int8, activations quantized at run time " +
                          "(ONNX Runtime fuses DynamicQuantizeMatMul). The --calibration data then only serves as probes and timing data.",
        };
        var guard = new Option<string>("--guard")
        {
            Description = "How int8 layers are kept right on x86 CPUs without VNNI, whose u8×s8 kernels add two products into int16 " +
                          "with saturation (static and dynamic modes): pair-safe (default: per-channel scales just wide enough that no two " +
                          "weights of a channel can overflow; same speed), 7bit-weights, 7bit-activations (static, uint8 activations only), " +
                          "uint8-weights (U8U8 kernels) or none (right only on CPUs with VNNI).",
            DefaultValueFactory = _ => "pair-safe",
            HelpName = "GUARD",
        };
        guard.AcceptOnlyFromAmong(GuardNames.Keys.ToArray());
        var noSpeedCheck = new Option<bool>("--no-speed-check")
        {
            Description = "Static mode: keep every layer int8. By default each layer is timed alone on this CPU, float against int8 " +
                          "(with the conversions its float neighbours force on it), and kept float where int8 is slower; the timings are " +
                          "printed and in the report. Use it for a model meant for another CPU.",
        };
        var reportDir = CommonOptions.Report();
        // ---- accuracy budget and --exclude-ops (defined in QuantizeBudget.cs) ----
        var budgetOptions = new QuantizeBudgetOptions();
        // ---- end accuracy budget ----
        // ---- --mode dynamic|matmulnbits, --block-size, --symmetric, --accuracy-level, --gptq, --float-embeddings (QuantizeNBits.cs) ----
        var modeOptions = new QuantizeModeOptions();
        // ---- end modes ----
        // ---- --mode storage, --weights (QuantizeStorage.cs) ----
        var storageOptions = new QuantizeStorageOptions();
        // ---- end storage ----
        var command = new Command("quantize",
            "Quantize a model (--mode): static int8 QDQ on weights and activations, calibrated, so that ONNX Runtime runs QLinearConv / " +
            "QGemm / QLinearMatMul (the default; BatchNormalization folding, Identity removal, MatMul+Add fusion and an opset upgrade run " +
            "first; --max-drop keeps the most sensitive layers float within an accuracy budget); dynamic int8 or 4-bit MatMulNBits for " +
            "transformers; or storage: int8/int4/int2/binary weights expanded at load (a smaller file, same speed). Reports the measured " +
            "latency ratio against the original.")
        {
            model, output, calibration, method, perChannel, perTensor, activations, percentile, rows, eval, evalRows, exclude, minCosine, vocab, dynamic,
            guard, noSpeedCheck, reportDir,
        };
        foreach (var budgetOption in budgetOptions.All) command.Options.Add(budgetOption); // accuracy budget, --exclude-ops
        foreach (var modeOption in modeOptions.All) command.Options.Add(modeOption); // --mode and the MatMulNBits options
        foreach (var storageOption in storageOptions.All) command.Options.Add(storageOption); // --weights (QuantizeStorage.cs)
        command.SetAction(async (ParseResult r, CancellationToken ct) =>
        {
            // ---- --mode storage (QuantizeStorage.cs): its own path, before the other modes are read ----
            if (storageOptions.Requested(r))
                return await storageOptions.RunAsync(context(r), r, new QuantizeStorageRun(r.GetValue(model)!, r.GetValue(output)!, r.GetValue(calibration)!,
                    r.GetValue(eval), r.GetValue(evalRows) ?? 256, r.GetValue(exclude) ?? [], r.GetValue(minCosine), r.GetValue(vocab),
                    r.GetValue(reportDir), r.GetValue(perChannel)), ct).ConfigureAwait(false);
            // ---- end storage ----
            var mode = modeOptions.Read(r, r.GetValue(dynamic)); // --mode (QuantizeNBits.cs); --dynamic is --mode dynamic
            var settings = new Settings(r.GetValue(model)!, r.GetValue(output)!, r.GetValue(calibration)!, r.GetValue(method)!,
                !r.GetValue(perTensor), r.GetValue(activations) switch { "int8" => "s8", "uint8" => "u8", var a => a! }, r.GetValue(percentile), r.GetValue(rows) ?? 128, r.GetValue(eval),
                r.GetValue(evalRows) ?? 256, r.GetValue(exclude) ?? [], r.GetValue(minCosine), r.GetValue(vocab), mode.IsDynamic,
                GuardNames[r.GetValue(guard)!], !r.GetValue(noSpeedCheck), r.GetValue(perChannel) || r.GetValue(perTensor));
            if (r.GetValue(perChannel) && r.GetValue(perTensor))
                throw new InputException("--per-channel and --per-tensor contradict each other; give one of them");
            return await RunAsync(context(r), settings, r.GetValue(reportDir), budgetOptions.Read(r), mode, ct).ConfigureAwait(false);
        });
        return command;
    }

    private sealed record Settings(string Model, string Output, string Calibration, string Method, bool PerChannel, string Activations,
        double? Percentile, int CalibrationRows, string? Eval, int EvalRows, string[] Exclude, double MinCosine, string? Vocab, bool Dynamic,
        PairSumGuard Guard, bool SpeedCheck, bool ScaleFlagGiven);

    /// <summary>The <c>--guard</c> names.</summary>
    internal static readonly IReadOnlyDictionary<string, PairSumGuard> GuardNames = new Dictionary<string, PairSumGuard>(StringComparer.Ordinal)
    {
        ["pair-safe"] = PairSumGuard.PairSafeWeights,
        ["7bit-weights"] = PairSumGuard.SevenBitWeights,
        ["7bit-activations"] = PairSumGuard.ReducedRangeActivations,
        ["uint8-weights"] = PairSumGuard.Uint8Weights,
        ["none"] = PairSumGuard.None,
    };

    /// <summary>The range method named on the command line.</summary>
    /// <exception cref="InputException">The name is not a method.</exception>
    internal static RangeMethod ParseMethod(string name) => name.ToLowerInvariant() switch
    {
        "minmax" => RangeMethod.MinMax,
        "percentile" => RangeMethod.Percentile,
        "entropy" => RangeMethod.Entropy,
        "mse" => RangeMethod.Mse,
        _ => throw new InputException($"unknown --method '{name}'; expected minmax, percentile, entropy or mse"),
    };

    private static async Task<int> RunAsync(CliContext ctx, Settings s, string? reportDir, QuantizeBudgetSettings budget, QuantizeModeSettings mode, CancellationToken ct)
    {
        ModelFiles.Require(s.Model, "MODEL");
        var range = new RangeMethodOptions { Method = ParseMethod(s.Method), Percentile = s.Percentile ?? 99.99 };
        if (s.Percentile is double p && !(p > 50 && p <= 100))
            throw new InputException($"--percentile takes a value in (50, 100], not {p.ToString(CultureInfo.InvariantCulture)}");
        CommonOptions.CheckMinCosine(s.MinCosine);
        CommonOptions.CheckReport(reportDir);
        budget.Check(s.Dynamic, s.Eval is not null);
        // ---- modes (QuantizeNBits.cs) ----
        mode.Check(s.Method != "minmax" || s.ScaleFlagGiven || s.Activations != "u8" || s.Percentile is not null);
        if (mode.IsMatMulNBits && budget.MaxDrop is not null)
            throw new InputException("--max-drop applies to static quantization; drop --mode matmulnbits or --max-drop");
        // ---- end modes ----

        // Data specs are checked before anything is computed: a typo fails fast and nothing is written.
        var inputs = ModelFiles.Inputs(s.Model, RuntimeOptions.Default);
        var specOptions = new DataSpecOptions { ModelPath = s.Model, VocabPath = s.Vocab };
        var calibrationFeed = DataSpec.Parse(s.Calibration, inputs, specOptions);
        var evalFeed = s.Eval is null ? calibrationFeed : DataSpec.Parse(s.Eval, inputs, specOptions);

        var options = new QdqOptions
        {
            Calibration = calibrationFeed,
            CalibrationSettings = new CalibrationOptions { MaxRows = s.CalibrationRows, BatchSize = 16 },
            Activations = s.Activations == "s8" ? QdqActivationType.S8 : QdqActivationType.U8,
            PerChannel = s.PerChannel,
            Range = range,
            ExcludeNodes = s.Exclude.ToHashSet(StringComparer.Ordinal),
            Guard = s.Guard,
            KeepFloatWhereSlower = s.SpeedCheck,
        };
        if (s.Guard == PairSumGuard.ReducedRangeActivations && (s.Dynamic || options.Activations != QdqActivationType.U8))
            throw new InputException("--guard 7bit-activations needs static quantization with uint8 activations; use --guard pair-safe or uint8-weights");
        var graph = ModelGraph.Load(s.Model);
        // Checked before preparation runs: constant folding would otherwise fold the model's weight DequantizeLinear
        // nodes back to float and hand over a bigger file.
        if (QuantizedModelDetector.Describe(graph) is { } already)
            throw new InputException($"{already.TrimEnd('.')}; nothing was written");
        var notes = new List<string>();
        // ---- accuracy budget (QuantizeBudget.cs): search first, then write its best candidate through the same recipe ----
        options = options with { Ops = budget.Ops(options.Ops) };
        BudgetResult? budgetResult = null;
        if (budget.MaxDrop is not null)
        {
            budgetResult = await QuantizeBudgetOptions.SearchAsync(ctx, graph, options, evalFeed, budget, ct).ConfigureAwait(false);
            options = budgetResult.BestOptions;
        }
        // ---- end accuracy budget ----
        // The dynamic and MatMulNBits passes (QuantizeNBits.cs), else the static QDQ recipe.
        var passes = mode.Passes(options.ExcludeNodes, calibrationFeed, s.CalibrationRows, s.Guard) ?? QdqRecipe.Passes(graph.OnnxOpset, options, notes);
        var compression = new CompressionOptions
        {
            OutputPath = s.Output,
            Probes = evalFeed,
            Verification = new VerifyOptions { MinCosine = s.MinCosine },
        };
        var result = await ProgressBar.RunAsync(ctx, "quantizing", bar =>
        {
            var progress = bar.Reporter<CompressionProgress>((b, p) =>
                b.Update($"{p.Stage.ToString().ToLowerInvariant()}: {p.Step}", p.Done, p.Total > 0 ? p.Total : null));
            return ModelCompressor.Compress(s.Model, passes, compression, progress, ct);
        }, ct).ConfigureAwait(false);

        // The tool never hands over a slower model without saying so: time both, interleaved, on the same data.
        var report = await ProgressBar.RunAsync(ctx, "timing against the original", _ =>
            ModelComparer.Compare(s.Model, result.OutputPath, evalFeed, new EvalOptions { MaxRows = s.EvalRows, BatchSize = 16 }, null, ct), ct)
            .ConfigureAwait(false);
        var doc = DemoCommand.ToDocument(result);
        var o = report.Outputs[0];
        string ratio = report.LatencyRatio.ToString("0.00", CultureInfo.InvariantCulture);
        doc.Fields(
            ("method", mode.Method ?? $"{range.Method}{(range.Method == RangeMethod.Percentile ? " " + range.Percentile.ToString(CultureInfo.InvariantCulture) : "")}, activations {options.Activations}, weights S8 {(s.PerChannel ? "per-channel" : "per-tensor")}"),
            ("latency ratio", $"{ratio}x of the original ({report.CandidateMedianMs.ToString("0.###", CultureInfo.InvariantCulture)} ms vs {report.BaselineMedianMs.ToString("0.###", CultureInfo.InvariantCulture)} ms per batch of {report.BatchSize}, median of {report.LatencySamples} interleaved runs on {report.Data})"),
            ("fidelity", $"cosine {o.MeanCosine.ToString("0.0000", CultureInfo.InvariantCulture)}" +
                         (o.Top1Agreement is double t ? $", top-1 agreement {t.ToString("0.0%", CultureInfo.InvariantCulture)}" : "") +
                         (o.CandidateAccuracy is double ca && o.BaselineAccuracy is double ba
                             ? $", accuracy {ba.ToString("0.0%", CultureInfo.InvariantCulture)} -> {ca.ToString("0.0%", CultureInfo.InvariantCulture)}" : "")));
        // The speed check (static mode): each layer alone, and the whole-model verdict.
        if (passes.OfType<QdqQuantizationPass>().LastOrDefault()?.LastPlan is { Speeds.Count: > 0 } timedPlan)
        {
            var c = CultureInfo.InvariantCulture;
            doc.Table("Speed check (each layer alone on this CPU, fastest of interleaved runs)",
                [new("layer"), new("op"), new("input"), new("float ms", true), new("int8 ms", true), new("int8 in place ms", true), new("int8 speed-up", true), new("kept")],
                timedPlan.Speeds.Select(sp => new[]
                {
                    sp.Layer, sp.OpType, "[" + string.Join(",", sp.InputShape) + "]", sp.FloatMs.ToString("0.000", c), sp.Int8Ms.ToString("0.000", c),
                    sp.Int8InPlaceMs.ToString("0.000", c), sp.Speedup.ToString("0.00", c) + "x", sp.KeptFloat ? "float" : "int8",
                }));
            if (timedPlan.SpeedSummary is { } verdict) notes.Add(verdict);
        }
        // Which layers could overflow int16 pair sums on CPUs without VNNI, and the guard that kept them right.
        notes.AddRange(result.Passes.SelectMany(p => p.Changes).Where(c => c.Contains("int16 pair sums", StringComparison.Ordinal)));
        var warnings = new List<string>(notes);
        if (budgetResult is not null) // accuracy budget: the table of tries, and its notes (early stop, budget not met)
        {
            QuantizeBudgetOptions.Render(doc, budgetResult);
            warnings.AddRange(budgetResult.Notes.Where(n => !notes.Contains(n)));
            if (!budgetResult.BudgetMet && !ctx.Quiet)
                ctx.Err.WriteLine("warning: no candidate met the accuracy budget; the one with the smallest drop was written.");
        }
        if (report.LatencyRatio >= 1)
            warnings.Add($"WARNING: the quantized model is NOT faster: it takes {ratio}x the original's time on this machine.");
        doc.Notes("Notes", warnings);
        ctx.Render(doc);
        if (report.LatencyRatio >= 1 && !ctx.Quiet)
            ctx.Err.WriteLine($"warning: the quantized model is not faster than the original ({ratio}x its latency).");
        await CommonOptions.WriteReportAsync(ctx, reportDir, result, evalFeed, report, ct).ConfigureAwait(false);
        return ErrorReporter.Success;
    }
}
