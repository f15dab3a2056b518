using System.CommandLine;
using System.Globalization;
using MLNetCompress.Cli.Output;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Inspection;
using MLNetCompress.Runtime;

namespace MLNetCompress.Cli.Commands;

/// <summary>
/// <c>demo</c>: the README's main job. Compresses the bundled Fashion-MNIST CNN with the demo passes (int8
/// weight storage), writes it, and prints the compression report and then the eval table on the bundled test subset.
/// </summary>
internal static class DemoCommand
{
    internal const string SampleModel = "fashion_mnist_cnn.onnx";
    private const string SampleData = "fashion-mnist";

    public static Command Create(Func<ParseResult, CliContext> context)
    {
        var output = new Option<string>("--out", "-o")
        {
            Description = "Folder to write the compressed model into (created if missing); the file is MODEL.int8.onnx.",
            DefaultValueFactory = _ => "demo-out",
            HelpName = "DIR",
        };
        var data = new Option<string?>("--data", "-d")
        {
            Description = "Data for verification probes and the eval table (a data spec, see 'eval --help'); " +
                          "default: the bundled Fashion-MNIST test subset, fashion-mnist:onnx-samples/fashion-mnist:test.",
            HelpName = "SPEC",
        };
        var model = new Option<string?>("--model", "-m")
        {
            Description = $"The model to compress instead of the bundled onnx-samples/{SampleModel} " +
                          "(found by walking up from the current folder, then from the tool's folder).",
            HelpName = "FILE",
        };
        var report = CommonOptions.Report();
        var command = new Command("demo",
            $"Compress the bundled Fashion-MNIST CNN (onnx-samples/{SampleModel}) with int8 weight storage, write it " +
            "(default ./demo-out/fashion_mnist_cnn.int8.onnx), then print the compression report (bytes before and after, " +
            "per-layer table) and the eval table against the original on the bundled Fashion-MNIST test subset.")
        {
            output, data, model, report,
        };
        command.SetAction((r, ct) => RunAsync(context(r), r.GetValue(output)!, r.GetValue(data), r.GetValue(model), r.GetValue(report), ct));
        return command;
    }

    private static async Task<int> RunAsync(CliContext ctx, string outDir, string? dataSpec, string? modelPath, string? reportDir, CancellationToken ct)
    {
        CommonOptions.CheckReport(reportDir);
        var input = modelPath ?? FindSample();
        ModelFiles.Require(input, modelPath is null ? "the bundled sample" : "--model");
        var spec = dataSpec ?? DefaultData();
        if (File.Exists(outDir))
            throw new InputException($"--out '{outDir}' is a file; pass a folder to write the compressed model into");
        var outputPath = Path.GetFullPath(Path.Combine(outDir, Path.GetFileNameWithoutExtension(input) + ".int8.onnx"));

        // The data spec is checked before anything is compressed: a typo fails fast and nothing is written.
        var probes = DataSpec.Parse(spec, ModelFiles.Inputs(input, RuntimeOptions.Default), new DataSpecOptions { ModelPath = input });
        var options = new CompressionOptions { OutputPath = outputPath, Probes = probes };
        var result = await ProgressBar.RunAsync(ctx, "compressing", bar =>
        {
            var progress = bar.Reporter<CompressionProgress>((b, p) =>
                b.Update($"{p.Stage.ToString().ToLowerInvariant()}: {p.Step}", p.Done, p.Total > 0 ? p.Total : null));
            return ModelCompressor.Compress(input, ModelCompressor.DemoPasses(), options, progress, ct);
        }, ct).ConfigureAwait(false);
        ctx.Render(ToDocument(result));

        var settings = new EvalCommand.EvalSettings(input, outputPath, spec, MaxRows: null, Threads: 0, BatchSize: 32, Vocab: null);
        var eval = await ProgressBar.RunAsync(ctx, "evaluating", bar => EvalCommand.Evaluate(settings, bar, ct), ct).ConfigureAwait(false);
        ctx.Out.WriteLine();
        ctx.Render(EvalCommand.ToDocument(eval, Path.GetFileName(input), Path.GetFileName(outputPath)));
        await CommonOptions.WriteReportAsync(ctx, reportDir, result, probes, eval, ct).ConfigureAwait(false);
        return ErrorReporter.Success;
    }

    private static string FindSample()
    {
        var samples = ModelFiles.FindSamples(SampleModel)
            ?? throw new InputException($"the bundled sample onnx-samples/{SampleModel} was not found above the current folder or the tool; " +
                                        "run from the repository or pass --model FILE");
        return Path.Combine(samples, SampleModel);
    }

    private static string DefaultData()
    {
        var samples = ModelFiles.FindSamples(Path.Combine(SampleData, "t10k-images-idx3-ubyte.gz"))
            ?? throw new InputException($"the bundled Fashion-MNIST subset onnx-samples/{SampleData} was not found; run from the repository or pass --data SPEC");
        return $"fashion-mnist:{Path.Combine(samples, SampleData)}:test";
    }

    internal static Document ToDocument(CompressionResult r)
    {
        var doc = new Document();
        doc.Heading($"compress: {Path.GetFileName(r.InputPath ?? "model")} -> {Path.GetFileName(r.OutputPath)}");
        doc.Fields(
            ("input", r.InputPath ?? "(bytes)"),
            ("output", r.OutputPath),
            ("bytes before", $"{N(r.BytesBefore)} ({Sizes.Format(r.BytesBefore)})"),
            ("bytes after", $"{N(r.BytesAfter)} ({Sizes.Format(r.BytesAfter)})"),
            ("ratio", $"{r.CompressionRatio.ToString("0.00", CultureInfo.InvariantCulture)}x smaller ({(1 - 1 / r.CompressionRatio).ToString("0.0%", CultureInfo.InvariantCulture)} saved)"),
            ("passes", string.Join("; ", r.Passes.Select(p => $"{p.PassName}: {(p.Modified ? $"{p.Changes.Count} changes" : "no change")}{(p.Skipped.Count > 0 ? $", {p.Skipped.Count} skipped" : "")}"))),
            ("verified", r.Verification.Summary),
            ("elapsed", $"{r.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s"));
        if (r.Layers.Count > 0)
        {
            doc.Table("Layers", [new("weight"), new("op"), new("shape"), new("before"), new("after"), new("bytes before", true), new("bytes after", true), new("max abs error", true)],
                r.Layers.Select(l => new[]
                {
                    l.Weight, l.OpType, "[" + string.Join(",", l.Shape) + "]", l.StorageBefore, l.StorageAfter,
                    Sizes.Format(l.BytesBefore), Sizes.Format(l.BytesAfter), l.MaxAbsError.ToString("0.###e+0", CultureInfo.InvariantCulture),
                }),
                [$"{r.Layers.Count} weights", "", "", "", "", Sizes.Format(r.Layers.Sum(l => l.BytesBefore)), Sizes.Format(r.Layers.Sum(l => l.BytesAfter)), ""]);
        }
        doc.Notes("Skipped", r.Passes.SelectMany(p => p.Skipped.Select(s => $"{p.PassName}: {s}")).ToList());
        doc.Notes("Verification gate recovery", r.Notes);
        return doc;
    }

    private static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);
}
