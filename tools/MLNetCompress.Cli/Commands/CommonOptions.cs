using System.CommandLine;
using System.Globalization;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Reporting;
using MLNetCompress.Runtime;

namespace MLNetCompress.Cli.Commands;

/// <summary>Options that every model-writing command takes the same way.</summary>
internal static class CommonOptions
{
    /// <summary><c>--min-cosine C</c>: the verification gate before anything is written.</summary>
    /// <param name="probes">Which probes the gate uses, as the help text should say it.</param>
    /// <param name="defaultValue">The command's default.</param>
    public static Option<double> MinCosine(string probes, double defaultValue) => new("--min-cosine")
    {
        Description = $"The written model's outputs must have at least this cosine with the original's on {probes} " +
                      $"(default {defaultValue.ToString(CultureInfo.InvariantCulture)}).",
        DefaultValueFactory = _ => defaultValue,
        HelpName = "C",
    };

    /// <summary>Rejects a <c>--min-cosine</c> outside [-1, 1] as bad input.</summary>
    /// <exception cref="InputException">The value is not a cosine.</exception>
    public static void CheckMinCosine(double value)
    {
        if (!(value is >= -1 and <= 1))
            throw new InputException($"--min-cosine takes a value in [-1, 1], not {value.ToString(CultureInfo.InvariantCulture)}");
    }

    // ---- --report ------------------------------------------------------------------------------

    /// <summary>Rows the report's evaluation runs at most when the command did not evaluate the model itself.</summary>
    internal const int ReportEvalRows = 1000;

    /// <summary><c>--report DIR</c>: the compression report (JSON, Markdown, HTML) of the run.</summary>
    public static Option<string?> Report() => new("--report")
    {
        Description = "Folder to write the compression report into: report.json, report.md and report.html (bytes, sparsity, " +
                      "clusters, bits, rank and error per layer, weight histograms before/after, and the eval table against the original).",
        HelpName = "DIR",
    };

    /// <summary>Rejects a <c>--report</c> that names a file, before anything is computed.</summary>
    /// <exception cref="InputException">The path is an existing file.</exception>
    public static void CheckReport(string? folder)
    {
        if (folder is not null && File.Exists(folder))
            throw new InputException($"--report '{folder}' is a file; pass a folder to write report.json, report.md and report.html into");
    }

    /// <summary>
    /// Writes the report of a run into <paramref name="folder"/> (nothing when it is null). Without
    /// <paramref name="comparison"/>, the written model is first evaluated against the original on <paramref name="data"/>
    /// (the command's probe data; random rows when it has none), under a progress bar.
    /// </summary>
    /// <param name="ctx">Where progress and the report path are shown.</param>
    /// <param name="folder">The --report value.</param>
    /// <param name="result">The run.</param>
    /// <param name="data">Data for the evaluation; null for random rows shaped to the model.</param>
    /// <param name="comparison">An evaluation the command already ran, or null.</param>
    /// <param name="ct">Stops the evaluation.</param>
    public static async Task WriteReportAsync(CliContext ctx, string? folder, CompressionResult result, IDataFeed? data, EvalReport? comparison, CancellationToken ct)
    {
        if (folder is null) return;
        CheckReport(folder);
        string input = result.InputPath ?? throw new InvalidOperationException("a CLI run always has an input file");
        var report = await ProgressBar.RunAsync(ctx, "writing the report", bar =>
        {
            if (comparison is null)
            {
                var feed = data ?? new RandomFeed(ModelFiles.Inputs(input, RuntimeOptions.Default), rows: 32);
                var progress = bar.Reporter<EvalProgress>((b, p) =>
                    b.Update(p.Phase switch
                    {
                        "warmup" => "report: warming up",
                        "latency" => "report: timing both models",
                        _ => "report: comparing with the original",
                    }, p.RowsDone, p.TotalRows));
                comparison = ModelComparer.Compare(input, result.OutputPath, feed,
                    new EvalOptions { MaxRows = ReportEvalRows, BatchSize = 16 }, progress, ct);
            }
            bar.Update("report: reading the weights back", 0, null);
            return CompressionReport.Build(result, comparison);
        }, ct).ConfigureAwait(false);
        var paths = ReportWriter.WriteAll(report, folder);
        if (!ctx.Quiet) ctx.Err.WriteLine($"report: {paths[^1]}");
    }
}
