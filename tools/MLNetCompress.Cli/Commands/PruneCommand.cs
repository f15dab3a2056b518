using System.CommandLine;
using System.Globalization;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Pruning;
using MLNetCompress.Pruning.Structured;
using MLNetCompress.Runtime;

namespace MLNetCompress.Cli.Commands;

/// <summary>
/// <c>prune MODEL -o OUT (--sparsity S | --std-rate R | --pattern N:M) [--allocation uniform|global|sensitivity | --global] [--pattern N:M] [--sparse-storage]
/// [--sparse-format auto|coo|bitmask]
/// [--exclude NAME]... [--min-elements N] [--calibration SPEC [--reconstruct]] [--min-cosine C] [--report DIR]</c>: zeroes the
/// smallest weights of Conv, ConvTranspose, Gemm and MatMul, optionally re-fits the kept ones on the calibration data
/// and stores them sparsely, verifies the result in ONNX Runtime and writes it.
/// <c>prune MODEL -o OUT --structured --channels F [--criterion l1|activation|reconstruction] [--round-to N] [--keep-at-least N]
/// [--no-residual-groups] [--calibration SPEC [--reconstruct [--sequential]]]</c> removes whole output channels instead (the model gets faster).
/// </summary>
internal static class PruneCommand
{
    public static Command Create(Func<ParseResult, CliContext> context)
    {
        var model = new Argument<string>("MODEL") { Description = "The .onnx model to prune (only read)." };
        var output = new Option<string>("--output", "-o") { Description = "The pruned model to write.", Required = true, HelpName = "OUT" };
        var sparsity = new Option<double?>("--sparsity", "-s") { Description = "Fraction of each layer's weights to zero, in [0, 1) (with --allocation global or sensitivity: of all pruned weights).", HelpName = "S" };
        sparsity.CustomParser = r => ParseNumber(r, "--sparsity", v => v is >= 0 and < 1, "a fraction in [0, 1)");
        var stdRate = new Option<double?>("--std-rate") { Description = "Zero every |w| ≤ R × the layer's standard deviation (the classic rule).", HelpName = "R" };
        stdRate.CustomParser = r => ParseNumber(r, "--std-rate", v => v >= 0 && double.IsFinite(v), "a number ≥ 0");
        var global = new Option<bool>("--global") { Description = "One magnitude threshold over all layers, chosen to reach --sparsity overall (same as --allocation global)." };
        var allocation = new Option<string?>("--allocation")
        {
            Description = "How --sparsity is shared among layers: uniform (each layer, default), global (one threshold over all weights), " +
                "or sensitivity (each layer's output damage is measured on --calibration at a grid of sparsities; sensitive layers keep more, same total).",
            HelpName = "uniform|global|sensitivity",
        };
        var pattern = new Option<string?>("--pattern") { Description = "N:M sparsity (e.g. 2:4) along each layer's input channels; alone or before --sparsity/--std-rate.", HelpName = "N:M" };
        var sparseStorage = new Option<bool>("--sparse-storage") { Description = "Store mostly-zero weights as sparse initializers (values + indices) when that is smaller." };
        var sparseFormat = SparseFormatOption();
        var exclude = new Option<string[]>("--exclude") { Description = "A weight or node name to leave alone (repeatable).", HelpName = "NAME", AllowMultipleArgumentsPerToken = false };
        var minElements = new Option<int?>("--min-elements") { Description = "Leave weights with fewer values alone (default 1024).", HelpName = "N" };
        minElements.CustomParser = r => (int?)ParseNumber(r, "--min-elements", v => v >= 0 && v == Math.Floor(v) && v <= int.MaxValue, "a whole number ≥ 0");
        var calibration = new Option<string?>("--calibration", "-c")
        {
            Description = $"Probe data for verification (a data spec: {DataSpec.Expected}); default: random probes.",
            HelpName = "SPEC",
        };
        var minCosine = CommonOptions.MinCosine("every probe row", 0.99);
        var reconstruct = new Option<bool>("--reconstruct") { Description = "Re-fit each pruned layer's kept weights to its outputs on the --calibration data (needs --calibration)." };
        var structured = new Option<bool>("--structured") { Description = "Remove whole output channels of Conv/Gemm layers (and every consumer's matching inputs) instead of zeroing weights; needs --channels." };
        var channels = new Option<double?>("--channels") { Description = "With --structured: fraction of each layer's output channels to remove, in [0, 1).", HelpName = "FRACTION" };
        channels.CustomParser = r => ParseNumber(r, "--channels", v => v is >= 0 and < 1, "a fraction in [0, 1)");
        var criterion = new Option<string?>("--criterion")
        {
            Description = "With --structured: rank channels by l1 (filter norm, default), activation (mean |activation| on --calibration), " +
                "or reconstruction (greedy: the least output error left after --reconstruct).",
            HelpName = "l1|activation|reconstruction",
        };
        var roundTo = new Option<int?>("--round-to") { Description = "With --structured: round each layer's kept channel count to a multiple of N (e.g. 8; default 1).", HelpName = "N" };
        roundTo.CustomParser = r => (int?)ParseNumber(r, "--round-to", v => v >= 1 && v == Math.Floor(v) && v <= 4096, "a whole number from 1 to 4096");
        var keepAtLeast = new Option<int?>("--keep-at-least") { Description = "With --structured: never keep fewer than N channels in a layer (default 8).", HelpName = "N" };
        keepAtLeast.CustomParser = r => (int?)ParseNumber(r, "--keep-at-least", v => v >= 1 && v == Math.Floor(v) && v <= int.MaxValue, "a whole number ≥ 1");
        var noResidual = new Option<bool>("--no-residual-groups") { Description = "With --structured: leave channels that residual Adds tie across layers whole (prune only each block's own channels)." };
        var sequential = new Option<bool>("--sequential")
        {
            Description = "With --structured --reconstruct: re-fit the layers one after another, each on the partly pruned model's data " +
                "fitted to the original model's (later layers absorb earlier errors; one calibration run per layer group, so slower).",
        };
        var report = CommonOptions.Report();
        var command = new Command("prune",
            "Zero the smallest-magnitude weights of Conv, ConvTranspose, Gemm and MatMul layers (per layer, globally, or N:M), " +
            "optionally store them sparsely so the file shrinks; verify the result in ONNX Runtime and write it. " +
            "Give --sparsity, --std-rate or --pattern; or --structured --channels F to remove whole channels.")
        {
            model, output, sparsity, stdRate, global, allocation, pattern, sparseStorage, sparseFormat, exclude, minElements, calibration, minCosine, report, reconstruct,
            structured, channels, criterion, roundTo, keepAtLeast, noResidual, sequential,
        };
        command.SetAction(async (ParseResult r, CancellationToken ct) =>
        {
            var settings = new Settings(r.GetValue(model)!, r.GetValue(output)!, r.GetValue(sparsity), r.GetValue(stdRate), r.GetValue(global),
                r.GetValue(pattern), r.GetValue(sparseStorage), r.GetValue(exclude) ?? [], r.GetValue(minElements), r.GetValue(calibration),
                r.GetValue(minCosine), r.GetValue(report), r.GetValue(reconstruct),
                new StructuredSettings(r.GetValue(structured), r.GetValue(channels), r.GetValue(criterion), r.GetValue(roundTo), r.GetValue(keepAtLeast), r.GetValue(noResidual))
                { Sequential = r.GetValue(sequential) })
            {
                Allocation = r.GetValue(allocation),
                SparseFormat = r.GetValue(sparseFormat),
            };
            return await RunAsync(context(r), settings, ct).ConfigureAwait(false);
        });
        return command;
    }

    private sealed record Settings(string Model, string Output, double? Sparsity, double? StdRate, bool Global, string? Pattern,
        bool SparseStorage, string[] Exclude, int? MinElements, string? Calibration, double MinCosine, string? Report, bool Reconstruct,
        StructuredSettings Structured)
    {
        /// <summary>--allocation as typed, or null.</summary>
        public string? Allocation { get; init; }

        /// <summary>--sparse-format as typed, or null.</summary>
        public string? SparseFormat { get; init; }
    }

    private sealed record StructuredSettings(bool On, double? Channels, string? Criterion, int? RoundTo, int? KeepAtLeast, bool NoResidualGroups)
    {
        /// <summary>--sequential.</summary>
        public bool Sequential { get; init; }

        public bool AnyOption => Channels is not null || Criterion is not null || RoundTo is not null || KeepAtLeast is not null || NoResidualGroups || Sequential;
    }

    /// <summary>Parses a number option; a value outside the range is a one-line parse error naming the option.</summary>
    internal static double? ParseNumber(System.CommandLine.Parsing.ArgumentResult r, string name, Func<double, bool> valid, string expected)
    {
        if (r.Tokens.Count == 0) return null;
        var text = r.Tokens[^1].Value;
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && valid(v)) return v;
        r.AddError($"{name} takes {expected}, not '{text}'");
        return null;
    }

    private static async Task<int> RunAsync(CliContext ctx, Settings s, CancellationToken ct)
    {
        ModelFiles.Require(s.Model, "MODEL");
        if (s.Structured.On || s.Structured.AnyOption) return await RunStructuredAsync(ctx, s, ct).ConfigureAwait(false);
        if (s.Sparsity is null && s.StdRate is null && s.Pattern is null)
            throw new InputException("give --sparsity S, --std-rate R or --pattern N:M");
        if (s.Sparsity is not null && s.StdRate is not null)
            throw new InputException("give --sparsity or --std-rate, not both");
        if (s.Global && s.Sparsity is null)
            throw new InputException("--global needs --sparsity S (the overall fraction the one threshold must reach)");
        var allocation = ParseAllocation(s.Allocation, s.Global);
        if (allocation != SparsityAllocation.Uniform && s.Sparsity is null)
            throw new InputException($"--allocation {s.Allocation} needs --sparsity S (the total fraction it shares out among the layers)");
        if (allocation == SparsityAllocation.Sensitivity && s.Calibration is null)
            throw new InputException("--allocation sensitivity needs --calibration SPEC (the data each layer's sensitivity is measured on)");
        CommonOptions.CheckMinCosine(s.MinCosine);
        CommonOptions.CheckReport(s.Report);
        NMPattern? pattern = null;
        if (s.Pattern is not null)
        {
            try { pattern = NMPattern.Parse(s.Pattern); }
            catch (FormatException e) { throw new InputException($"--pattern: {e.Message.TrimEnd('.')}"); }
        }
        var options = new PruningOptions
        {
            Sparsity = s.Sparsity,
            StdRate = s.StdRate,
            Allocation = allocation,
            Pattern = pattern,
            Exclude = s.Exclude.ToHashSet(StringComparer.Ordinal),
            MinElements = s.MinElements ?? new PruningOptions().MinElements,
        };
        if (s.Reconstruct && s.Calibration is null)
            throw new InputException("--reconstruct needs --calibration SPEC (the data the layers are re-fitted on)");

        // The data spec is checked before anything is computed: a typo fails fast and nothing is written.
        IDataFeed? probes = s.Calibration is null ? null
            : DataSpec.Parse(s.Calibration, ModelFiles.Inputs(s.Model, RuntimeOptions.Default), new DataSpecOptions { ModelPath = s.Model });
        if (allocation == SparsityAllocation.Sensitivity) options = options with { Calibration = probes };
        List<IGraphPass> passes =
            [s.Reconstruct ? new ReconstructionPass(new ReconstructionOptions { Pruning = options, Calibration = probes! }) : new MagnitudePruningPass(options)];
        if (SparseStorage(s.SparseStorage, s.SparseFormat) is { } storage) passes.Add(new SparseStoragePass(storage));
        var compression = new CompressionOptions { OutputPath = s.Output, Probes = probes, Verification = new VerifyOptions { MinCosine = s.MinCosine } };
        var result = await CompressWithProgress(ctx, "pruning", s.Model, passes, compression, ct).ConfigureAwait(false);
        ctx.Render(DemoCommand.ToDocument(result));
        await CommonOptions.WriteReportAsync(ctx, s.Report, result, probes, null, ct).ConfigureAwait(false);
        return ErrorReporter.Success;
    }

    /// <summary><c>--sparse-format auto|coo|bitmask</c>, shared by prune and cluster.</summary>
    internal static Option<string?> SparseFormatOption()
    {
        var option = new Option<string?>("--sparse-format")
        {
            Description = "How --sparse-storage stores mostly-zero tensors (implies it): coo (sparse_initializer, values + indices; the default), " +
                "bitmask (a 1-bit mask + the non-zero values, 4-bit for cluster indices, expanded by nodes ONNX Runtime folds at load; opset 11+), " +
                "or auto (per tensor, the smaller file).",
            HelpName = "auto|coo|bitmask",
        };
        option.AcceptOnlyFromAmong("auto", "coo", "bitmask");
        return option;
    }

    /// <summary>The sparse-storage options of --sparse-storage / --sparse-format, or null when neither is given.</summary>
    internal static SparseStorageOptions? SparseStorage(bool on, string? format) => format switch
    {
        null => on ? new SparseStorageOptions() : null,
        "auto" => new SparseStorageOptions { Format = SparseFormat.Auto },
        "bitmask" => new SparseStorageOptions { Format = SparseFormat.Bitmask },
        _ => new SparseStorageOptions { Format = SparseFormat.Coo },
    };

    /// <summary>--allocation (case-insensitive), with --global as the alias of global; a clash or an unknown name is a one-line error.</summary>
    internal static SparsityAllocation ParseAllocation(string? text, bool global)
    {
        var allocation = text?.ToLowerInvariant() switch
        {
            null => global ? SparsityAllocation.Global : SparsityAllocation.Uniform,
            "uniform" => SparsityAllocation.Uniform,
            "global" => SparsityAllocation.Global,
            "sensitivity" => SparsityAllocation.Sensitivity,
            _ => throw new InputException($"--allocation takes uniform, global or sensitivity, not '{text}'"),
        };
        if (global && allocation != SparsityAllocation.Global)
            throw new InputException($"--global means --allocation global; drop one of --global and --allocation {text}");
        return allocation;
    }

    private static async Task<int> RunStructuredAsync(CliContext ctx, Settings s, CancellationToken ct)
    {
        var t = s.Structured;
        if (!t.On)
            throw new InputException("--channels, --criterion, --round-to, --keep-at-least, --no-residual-groups and --sequential need --structured");
        if (t.Channels is not double fraction)
            throw new InputException("--structured needs --channels FRACTION (the share of each layer's output channels to remove)");
        if (s.Sparsity is not null || s.StdRate is not null || s.Pattern is not null || s.Global || s.SparseStorage || s.MinElements is not null || s.Allocation is not null
            || s.SparseFormat is not null)
            throw new InputException("--structured removes whole channels; --sparsity, --std-rate, --pattern, --global, --allocation, --sparse-storage, --sparse-format and --min-elements are for zeroing weights: use one kind per run");
        CommonOptions.CheckMinCosine(s.MinCosine);
        CommonOptions.CheckReport(s.Report);
        var criterion = t.Criterion?.ToLowerInvariant() switch
        {
            null or "l1" => ChannelCriterion.L1,
            "activation" => ChannelCriterion.Activation,
            "reconstruction" => ChannelCriterion.Reconstruction,
            _ => throw new InputException($"--criterion takes l1, activation or reconstruction, not '{t.Criterion}'"),
        };
        if (criterion == ChannelCriterion.Reconstruction && !s.Reconstruct)
            throw new InputException("--criterion reconstruction ranks channels by the error left after re-fitting: add --reconstruct and --calibration SPEC");
        if (criterion == ChannelCriterion.Activation && s.Calibration is null)
            throw new InputException("--criterion activation needs --calibration SPEC (the data the activations are measured on)");
        if (s.Reconstruct && s.Calibration is null)
            throw new InputException("--reconstruct needs --calibration SPEC (the data the next layers are re-fitted on)");
        if (t.Sequential && !s.Reconstruct)
            throw new InputException("--sequential re-fits the layers one after another: add --reconstruct and --calibration SPEC");

        IDataFeed? data = s.Calibration is null ? null
            : DataSpec.Parse(s.Calibration, ModelFiles.Inputs(s.Model, RuntimeOptions.Default), new DataSpecOptions { ModelPath = s.Model });
        var defaults = new StructuredPruningOptions();
        var options = new StructuredPruningOptions
        {
            Fraction = fraction,
            Criterion = criterion,
            Exclude = s.Exclude.ToHashSet(StringComparer.Ordinal),
            RoundTo = t.RoundTo ?? defaults.RoundTo,
            KeepAtLeast = t.KeepAtLeast ?? defaults.KeepAtLeast,
            ResidualGroups = !t.NoResidualGroups,
            Reconstruct = s.Reconstruct,
            Sequential = t.Sequential,
            Calibration = data,
        };
        var compression = new CompressionOptions { OutputPath = s.Output, Probes = data, Verification = new VerifyOptions { MinCosine = s.MinCosine } };
        var result = await CompressWithProgress(ctx, "structured pruning", s.Model, [new StructuredPruningPass(options)], compression, ct).ConfigureAwait(false);
        ctx.Render(DemoCommand.ToDocument(result));
        await CommonOptions.WriteReportAsync(ctx, s.Report, result, data, null, ct).ConfigureAwait(false);
        return ErrorReporter.Success;
    }

    internal static Task<CompressionResult> CompressWithProgress(CliContext ctx, string title, string model, IReadOnlyList<IGraphPass> passes,
        CompressionOptions options, CancellationToken ct) =>
        ProgressBar.RunAsync(ctx, title, bar =>
        {
            var progress = bar.Reporter<CompressionProgress>((b, p) =>
                b.Update($"{p.Stage.ToString().ToLowerInvariant()}: {p.Step}", p.Done, p.Total > 0 ? p.Total : null));
            return ModelCompressor.Compress(model, passes, options, progress, ct);
        }, ct);
}
