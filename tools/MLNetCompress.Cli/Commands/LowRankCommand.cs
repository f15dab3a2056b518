using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MLNetCompress.Calibration;
using MLNetCompress.Cli.Output;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.LowRank;
using MLNetCompress.Onnx;
using MLNetCompress.Runtime;

namespace MLNetCompress.Cli.Commands;

/// <summary>
/// <c>lowrank MODEL -o OUT (--energy E | --rank-ratio R | --target-params P | --vbmf | --search-cosine C) [--conv channel|spatial|tucker]
/// [--calibration SPEC --data-aware [--shrinkage L]] [--search-ratios LIST] [--search-rows N] [--measure] [--report DIR]</c>: splits Conv, Gemm and MatMul layers into low-rank
/// pairs, verifies the result in ONNX Runtime and writes it.
/// </summary>
internal static class LowRankCommand
{
    public static Command Create(Func<ParseResult, CliContext> context)
    {
        var model = new Argument<string>("MODEL") { Description = "The .onnx model to factorize (only read)." };
        var output = new Option<string>("--output", "-o") { Description = "The factorized model to write.", Required = true, HelpName = "OUT" };
        var energy = Fraction("--energy", "Keep this fraction of each layer's squared singular values (e.g. 0.9).", "E");
        var ratio = Fraction("--rank-ratio", "Rank = this fraction of each layer's full rank (e.g. 0.25).", "R");
        var target = Fraction("--target-params", "Each split holds at most this fraction of its layer's weight parameters (e.g. 0.5).", "P");
        var vbmf = new Option<bool>("--vbmf") { Description = "Choose each rank automatically (empirical variational Bayesian matrix factorization)." };
        var searchCosine = new Option<double?>("--search-cosine")
        {
            Description = "Search the ranks: try each layer alone at each --search-ratios rank (timed in ONNX Runtime, its output cosine measured " +
                "on the calibration data), then split the layers that save the most time per cosine lost while the model's mean output cosine " +
                "stays at or above C (checked on the whole result). Needs --calibration; the splits are data-aware.",
            HelpName = "C",
        };
        searchCosine.CustomParser = r =>
        {
            if (r.Tokens.Count == 0) return null;
            var text = r.Tokens[^1].Value;
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !(v > 0 && v < 1))
            {
                r.AddError($"--search-cosine takes a cosine in (0, 1), not '{text}'");
                return null;
            }
            return v;
        };
        var searchRatios = new Option<string?>("--search-ratios")
        {
            Description = "With --search-cosine: the ranks tried per layer, as comma-separated fractions of its full rank (default 0.25,0.375,0.5,0.625).",
            HelpName = "LIST",
        };
        var searchRows = EvalCommand.PositiveInt("--search-rows", "With --search-cosine: rows each trial runs the whole model on (default 32), taken from --search-data or else from the calibration data after the --calibration-rows the factors are fitted on.", "N");
        var searchData = new Option<string?>("--search-data")
        {
            Description = "With --search-cosine: data to measure the output cosine on (a data spec), e.g. other photos than the calibration ones; factors fitted on a few images score better on those images than on others.",
            HelpName = "SPEC",
        };
        var conv = new Option<string>("--conv")
        {
            Description = "How Conv layers are split: channel (K×K to r, then 1×1; default), spatial (K×1 then 1×K) or tucker (1×1, K×K, 1×1).",
            DefaultValueFactory = _ => "channel",
            HelpName = "FORM",
        };
        conv.AcceptOnlyFromAmong("channel", "spatial", "tucker");
        var calibration = new Option<string?>("--calibration", "-c")
        {
            Description = $"Calibration data (a data spec: {DataSpec.Expected}); also used as verification probes.",
            HelpName = "SPEC",
        };
        var dataAware = new Option<bool>("--data-aware") { Description = "Choose factors that minimize each layer's output error on the calibration data (needs --calibration; channel and tucker forms)." };
        var shrinkage = new Option<double?>("--shrinkage")
        {
            Description = "Data-aware: shrink the calibration covariance toward the plain weight split by L in [0, 1] (0: purely data-aware, " +
                "1: plain SVD; e.g. 0.5). Factors fitted to a few images otherwise favour what those images happen to contain.",
            HelpName = "L",
        };
        shrinkage.CustomParser = r =>
        {
            if (r.Tokens.Count == 0) return null;
            var text = r.Tokens[^1].Value;
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !(v >= 0 && v <= 1))
            {
                r.AddError($"--shrinkage takes a weight in [0, 1], not '{text}'");
                return null;
            }
            return v;
        };
        var rows = EvalCommand.PositiveInt("--calibration-rows", "Calibration rows to run (default 256).", "N");
        var measure = new Option<bool>("--measure") { Description = "Keep a split only where ONNX Runtime runs the split layer faster than the original (each layer timed alone on random input)." };
        var minCosine = CommonOptions.MinCosine("the probes", 0.99);
        var report = CommonOptions.Report();
        var vocab = new Option<string?>("--vocab") { Description = "A BERT vocab.txt for text: calibration data.", HelpName = "FILE" };
        var command = new Command("lowrank",
            "Split Conv, Gemm and MatMul layers into low-rank pairs (or a Tucker-2 triple) by truncated SVD, optionally " +
            "data-aware; verify the result in ONNX Runtime and write it. Exactly one of --energy, --rank-ratio, --target-params, --vbmf, --search-cosine.")
        {
            model, output, energy, ratio, target, vbmf, searchCosine, searchRatios, searchRows, searchData, conv, calibration, dataAware, shrinkage, rows, measure, minCosine, report, vocab,
        };
        command.SetAction(async (ParseResult r, CancellationToken ct) =>
        {
            var ctx = context(r);
            var settings = new Settings(r.GetValue(model)!, r.GetValue(output)!, r.GetValue(energy), r.GetValue(ratio), r.GetValue(target),
                r.GetValue(vbmf), r.GetValue(searchCosine), r.GetValue(searchRatios), r.GetValue(searchRows), r.GetValue(searchData), r.GetValue(conv)!, r.GetValue(calibration),
                r.GetValue(dataAware), r.GetValue(shrinkage), r.GetValue(rows) ?? 256, r.GetValue(measure), r.GetValue(minCosine), r.GetValue(report), r.GetValue(vocab));
            return await RunAsync(ctx, settings, ct).ConfigureAwait(false);
        });
        return command;
    }

    private sealed record Settings(string Model, string Output, double? Energy, double? RankRatio, double? TargetParams, bool Vbmf,
        double? SearchCosine, string? SearchRatios, int? SearchRows, string? SearchData, string Conv, string? Calibration, bool DataAware, double? Shrinkage, int CalibrationRows, bool Measure, double MinCosine, string? Report, string? Vocab);

    private static Option<double?> Fraction(string name, string description, string helpName)
    {
        var option = new Option<double?>(name) { Description = description, HelpName = helpName };
        option.CustomParser = r =>
        {
            if (r.Tokens.Count == 0) return null;
            var text = r.Tokens[^1].Value;
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !(v > 0 && v <= 1))
            {
                r.AddError($"{name} takes a fraction in (0, 1], not '{text}'");
                return null;
            }
            return v;
        };
        return option;
    }

    private static async Task<int> RunAsync(CliContext ctx, Settings s, CancellationToken ct)
    {
        ModelFiles.Require(s.Model, "MODEL");
        int criteria = (s.Energy is null ? 0 : 1) + (s.RankRatio is null ? 0 : 1) + (s.TargetParams is null ? 0 : 1) + (s.Vbmf ? 1 : 0) + (s.SearchCosine is null ? 0 : 1);
        if (criteria != 1)
            throw new InputException($"give exactly one of --energy, --rank-ratio, --target-params, --vbmf and --search-cosine ({criteria} given)");
        if (s.DataAware && s.Calibration is null)
            throw new InputException("--data-aware needs --calibration SPEC (the data the layer outputs are fitted on)");
        bool search = s.SearchCosine is not null;
        if (search && s.Calibration is null)
            throw new InputException("--search-cosine needs --calibration SPEC (the data the output cosine is measured on)");
        if (!search && (s.SearchRatios is not null || s.SearchRows is not null || s.SearchData is not null))
            throw new InputException("--search-ratios, --search-rows and --search-data only apply with --search-cosine C");
        if (search && s.Measure)
            throw new InputException("--measure is part of --search-cosine (every trial is timed); drop --measure");
        if (s.Shrinkage is not null && !s.DataAware && !search)
            throw new InputException("--shrinkage applies to data-aware splits; add --data-aware --calibration SPEC, or drop --shrinkage");
        var ratios = ParseRatios(s.SearchRatios);
        CommonOptions.CheckMinCosine(s.MinCosine);
        CommonOptions.CheckReport(s.Report);

        // The data spec is checked before anything is computed: a typo fails fast and nothing is written.
        IDataFeed? feed = s.Calibration is null ? null
            : DataSpec.Parse(s.Calibration, ModelFiles.Inputs(s.Model, RuntimeOptions.Default), new DataSpecOptions { ModelPath = s.Model, VocabPath = s.Vocab });
        var options = new LowRankOptions
        {
            Energy = s.Energy,
            RankRatio = s.RankRatio,
            TargetParams = s.TargetParams,
            Vbmf = s.Vbmf,
            MinCosine = s.SearchCosine,
            Conv = Enum.Parse<ConvFactorization>(s.Conv, ignoreCase: true),
            Calibration = s.DataAware || search ? feed : null,
            CovarianceShrinkage = s.Shrinkage ?? 0,
            CalibrationSettings = new CalibrationOptions { MaxRows = s.CalibrationRows },
        };
        if (ratios is not null) options = options with { SearchRankRatios = ratios };
        if (s.SearchData is not null)
            options = options with { SearchData = DataSpec.Parse(s.SearchData, ModelFiles.Inputs(s.Model, RuntimeOptions.Default), new DataSpecOptions { ModelPath = s.Model, VocabPath = s.Vocab }) };
        if (s.SearchRows is int searchRows) options = options with { SearchRows = searchRows };
        if (s.Measure) options = options with { Weights = await MeasuredWeightsAsync(ctx, s.Model, options, ct).ConfigureAwait(false) };

        var compression = new CompressionOptions
        {
            OutputPath = s.Output,
            Probes = feed,
            Verification = new VerifyOptions { MinCosine = s.MinCosine },
            // The search's trials and rounds, as they happen (a search runs the model many times).
            Log = search && !ctx.Quiet ? line => ctx.Err.WriteLine(line) : null,
        };
        var pass = new LowRankPass(options);
        var result = await ProgressBar.RunAsync(ctx, "factorizing", bar =>
        {
            var progress = bar.Reporter<CompressionProgress>((b, p) =>
                b.Update($"{p.Stage.ToString().ToLowerInvariant()}: {p.Step}", p.Done, p.Total > 0 ? p.Total : null));
            return ModelCompressor.Compress(s.Model, [pass], compression, progress, ct);
        }, ct).ConfigureAwait(false);
        if (search && !ctx.Quiet && pass.LastPlan is { SearchCosine: double cos } plan)
            ctx.Err.WriteLine(string.Create(CultureInfo.InvariantCulture, $"search: {plan.Layers.Count} splits chosen, mean output cosine {cos:0.00000} on the search rows"));
        ctx.Render(DemoCommand.ToDocument(result));
        await CommonOptions.WriteReportAsync(ctx, s.Report, result, feed, null, ct).ConfigureAwait(false);
        return ErrorReporter.Success;
    }

    /// <summary>--search-ratios: comma-separated fractions in (0, 1], or null when not given.</summary>
    private static double[]? ParseRatios(string? text)
    {
        if (text is null) return null;
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var values = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) || !(values[i] > 0 && values[i] <= 1))
                throw new InputException($"--search-ratios takes comma-separated fractions in (0, 1] such as 0.25,0.5, not '{parts[i]}'");
        if (values.Length == 0) throw new InputException("--search-ratios is empty; give fractions such as 0.25,0.5");
        return values;
    }

    /// <summary>--measure: the planned layers whose split runs faster in ONNX Runtime, each timed alone.</summary>
    private static Task<IReadOnlySet<string>> MeasuredWeightsAsync(CliContext ctx, string model, LowRankOptions options, CancellationToken ct) =>
        ProgressBar.RunAsync(ctx, "measuring splits", bar =>
        {
            var graph = ModelGraph.Load(model);
            var plan = new LowRankPass(options).Preview(graph);
            var faster = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < plan.Layers.Count; i++)
            {
                ct.ThrowIfCancellationRequested();
                bar.Update($"timing {plan.Layers[i].Weight}", i, plan.Layers.Count);
                var timing = LayerTiming.Measure(model, plan.Layers[i]);
                if (timing.Speedup > 1) faster.Add(plan.Layers[i].Weight);
                else if (!ctx.Quiet) ctx.Err.WriteLine($"--measure: {plan.Layers[i].Weight} kept whole ({timing})");
            }
            return (IReadOnlySet<string>)faster;
        }, ct);
}
