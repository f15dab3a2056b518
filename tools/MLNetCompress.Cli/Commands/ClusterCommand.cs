using System.CommandLine;
using System.Globalization;
using MLNetCompress.Clustering;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Pruning;
using MLNetCompress.Runtime;

namespace MLNetCompress.Cli.Commands;

/// <summary>
/// <c>cluster MODEL -o OUT --clusters K [--init kmeans++|linear|density] [--seed N] [--max-iterations N]
/// [--exclude NAME]... [--min-elements N] [--sparse-storage] [--sparse-format auto|coo|bitmask] [--calibration SPEC [--refine]] [--min-cosine C] [--report DIR]</c>:
/// weight sharing — each layer's weights become K centroids (a codebook) and an index per weight, gathered back
/// at load; verifies the result in ONNX Runtime and writes it.
/// </summary>
internal static class ClusterCommand
{
    public static Command Create(Func<ParseResult, CliContext> context)
    {
        var model = new Argument<string>("MODEL") { Description = "The .onnx model to cluster (only read)." };
        var output = new Option<string>("--output", "-o") { Description = "The clustered model to write.", Required = true, HelpName = "OUT" };
        var clusters = new Option<int>("--clusters", "-k") { Description = "Centroids per layer, 2 to 256; 16 or fewer store 4-bit indices.", Required = true, HelpName = "K" };
        clusters.CustomParser = r => (int)(PruneCommand.ParseNumber(r, "--clusters", v => v is >= 2 and <= 256 && v == Math.Floor(v), "a whole number from 2 to 256") ?? 0);
        var init = new Option<string>("--init")
        {
            Description = "How centroids start: kmeans++ (default), linear (evenly between min and max) or density (quantiles).",
            DefaultValueFactory = _ => "kmeans++",
            HelpName = "INIT",
        };
        init.AcceptOnlyFromAmong("kmeans++", "linear", "density");
        var seed = new Option<int>("--seed") { Description = "Seed of kmeans++ (same seed, same model; default 0).", HelpName = "N" };
        var iterations = new Option<int?>("--max-iterations") { Description = "Lloyd iterations at most per layer (default 10000: runs to convergence).", HelpName = "N" };
        iterations.CustomParser = r => (int?)PruneCommand.ParseNumber(r, "--max-iterations", v => v >= 0 && v == Math.Floor(v) && v <= int.MaxValue, "a whole number ≥ 0");
        var exclude = new Option<string[]>("--exclude") { Description = "A weight or node name to leave alone (repeatable).", HelpName = "NAME" };
        var minElements = new Option<int?>("--min-elements") { Description = "Leave weights with fewer values in float (default 1024).", HelpName = "N" };
        minElements.CustomParser = r => (int?)PruneCommand.ParseNumber(r, "--min-elements", v => v >= 0 && v == Math.Floor(v) && v <= int.MaxValue, "a whole number ≥ 0");
        var sparseStorage = new Option<bool>("--sparse-storage") { Description = "Afterwards, store mostly-zero tensors as sparse initializers when that is smaller." };
        var sparseFormat = PruneCommand.SparseFormatOption();
        var calibration = new Option<string?>("--calibration", "-c")
        {
            Description = $"Calibration data (a data spec: {DataSpec.Expected}): the probes of verification (default: random probes) and, with --refine, the inputs codebooks are refined on.",
            HelpName = "SPEC",
        };
        var refine = new Option<bool>("--refine")
        {
            Description = "Refine each layer's codebook by least squares on its real inputs from --calibration (the assignment kept; " +
                "a refined codebook is kept only where it lowers the layer's output error). Needs --calibration.",
        };
        var minCosine = CommonOptions.MinCosine("every probe row", 0.99);
        var report = CommonOptions.Report();
        var command = new Command("cluster",
            "Weight sharing: replace each Conv, ConvTranspose, Gemm and MatMul weight by K centroids and a 4- or 8-bit index per " +
            "weight (zeros of a pruned layer stay exactly zero), gathered back at load so inference runs at fp32 speed; " +
            "verify the result in ONNX Runtime and write it.")
        {
            model, output, clusters, init, seed, iterations, exclude, minElements, sparseStorage, sparseFormat, calibration, refine, minCosine, report,
        };
        command.SetAction(async (ParseResult r, CancellationToken ct) =>
        {
            var ctx = context(r);
            string path = r.GetValue(model)!;
            ModelFiles.Require(path, "MODEL");
            double cosine = r.GetValue(minCosine);
            CommonOptions.CheckMinCosine(cosine);
            CommonOptions.CheckReport(r.GetValue(report));
            bool refined = r.GetValue(refine);
            // The data spec is checked before anything is computed: a typo fails fast and nothing is written.
            string? spec = r.GetValue(calibration);
            if (refined && spec is null) throw new InputException("--refine needs --calibration SPEC (the data the codebooks are refined on)");
            IDataFeed? probes = spec is null ? null
                : DataSpec.Parse(spec, ModelFiles.Inputs(path, RuntimeOptions.Default), new DataSpecOptions { ModelPath = path });
            var defaults = new KMeansClusteringOptions();
            var options = new KMeansClusteringOptions
            {
                Clusters = r.GetValue(clusters),
                Init = r.GetValue(init) switch { "linear" => KMeansInit.Linear, "density" => KMeansInit.Density, _ => KMeansInit.KMeansPlusPlus },
                Seed = r.GetValue(seed),
                MaxIterations = r.GetValue(iterations) ?? defaults.MaxIterations,
                Exclude = (r.GetValue(exclude) ?? []).ToHashSet(StringComparer.Ordinal),
                MinElements = r.GetValue(minElements) ?? defaults.MinElements,
                Refine = refined,
                Calibration = refined ? probes : null,
            };
            List<IGraphPass> passes = [new KMeansClusteringPass(options)];
            if (PruneCommand.SparseStorage(r.GetValue(sparseStorage), r.GetValue(sparseFormat)) is { } storage) passes.Add(new SparseStoragePass(storage));
            var compression = new CompressionOptions
            {
                OutputPath = r.GetValue(output)!, Probes = probes, Verification = new VerifyOptions { MinCosine = cosine },
                Log = ctx.Verbose ? ctx.Err.WriteLine : null, // per-layer refinement errors and timings
            };
            var result = await PruneCommand.CompressWithProgress(ctx, "clustering", path, passes, compression, ct).ConfigureAwait(false);
            var doc = DemoCommand.ToDocument(result);
            if (refined) doc.Notes("Codebook refinement (output error on the calibration inputs)", RefinementLines(result));
            ctx.Render(doc);
            await CommonOptions.WriteReportAsync(ctx, r.GetValue(report), result, probes, null, ct).ConfigureAwait(false);
            return ErrorReporter.Success;
        });
        return command;
    }

    /// <summary>"weight: output error a% -> b% ..." for each weight refinement looked at: the tail of the pass's change
    /// line (<see cref="ClusteredLayer.ToString"/>) from its "output error".</summary>
    private static List<string> RefinementLines(CompressionResult result) =>
    [
        .. from pass in result.Passes
           where pass.PassName == "kmeans-clustering"
           from line in pass.Changes
           let at = line.IndexOf("; output error", StringComparison.Ordinal)
           where at >= 0
           select $"{line.Split(' ', 2)[0]}: {line[(at + 2)..]}",
    ];
}
