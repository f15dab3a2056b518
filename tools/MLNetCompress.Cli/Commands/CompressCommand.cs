using System.CommandLine;
using System.Globalization;
using MLNetCompress.Cli.Output;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Inspection;
using MLNetCompress.Packing;
using MLNetCompress.Recipes;
using MLNetCompress.Reporting;
using MLNetCompress.Runtime;

namespace MLNetCompress.Cli.Commands;

/// <summary>
/// <c>compress MODEL --recipe FILE -o OUT [--calibration SPEC] [--min-cosine C] [--vocab FILE] [--pack OUT.mlcz] [--report DIR]</c>:
/// runs a recipe (an ordered list of steps, see onnx-samples/recipes) on a model, verifies the result in ONNX Runtime and
/// writes it, optionally packs it too, and shows the size after each step (and after packing).
/// </summary>
internal static class CompressCommand
{
    public static Command Create(Func<ParseResult, CliContext> context)
    {
        var model = new Argument<string>("MODEL") { Description = "The .onnx model to compress (only read)." };
        var recipe = new Option<string>("--recipe", "-r")
        {
            Description = "The recipe: a JSON file of steps (e.g. onnx-samples/recipes/int8-speed.json).",
            Required = true,
            HelpName = "FILE",
        };
        var output = new Option<string>("--output", "-o") { Description = "The compressed model to write.", Required = true, HelpName = "OUT" };
        var calibration = new Option<string?>("--calibration", "-c")
        {
            Description = $"Calibration data for the steps that need it, also the verification probes (a data spec: {DataSpec.Expected}); default: random probes.",
            HelpName = "SPEC",
        };
        var minCosine = new Option<double?>("--min-cosine")
        {
            Description = "The written model's outputs must have at least this cosine with the original's on every probe row (default: the recipe's minCosine, else 0.99).",
            HelpName = "C",
        };
        var vocab = new Option<string?>("--vocab") { Description = "A BERT vocab.txt for text: data.", HelpName = "FILE" };
        var pack = new Option<string?>("--pack")
        {
            Description = "Also pack the written model into this entropy-coded container (.mlcz, see 'pack'); the size table and the report show it as the last stage.",
            HelpName = "OUT.mlcz",
        };
        var report = CommonOptions.Report();
        var command = new Command("compress",
            "Run a recipe — an ordered list of steps such as prepare, quantize-static, prune, reconstruct, cluster, lowrank, " +
            "sparse-storage — on a model; verify the result in ONNX Runtime and write it. Recipes for common goals are in onnx-samples/recipes.")
        {
            model, recipe, output, calibration, minCosine, vocab, pack, report,
        };
        command.SetAction(async (ParseResult r, CancellationToken ct) =>
        {
            var ctx = context(r);
            string path = r.GetValue(model)!;
            ModelFiles.Require(path, "MODEL");
            if (r.GetValue(minCosine) is double c) CommonOptions.CheckMinCosine(c);
            CommonOptions.CheckReport(r.GetValue(report));
            string? packPath = r.GetValue(pack);
            if (packPath is not null && (Directory.Exists(packPath) || string.IsNullOrWhiteSpace(Path.GetFileName(packPath))))
                throw new InputException($"--pack '{packPath}' is a folder; give a file name such as model.mlcz");
            if (packPath is not null && Path.GetFullPath(packPath) == Path.GetFullPath(r.GetValue(output)!))
                throw new InputException($"--pack '{packPath}' is also the --output model; give the container its own name, such as model.mlcz");
            Recipe plan;
            try
            {
                plan = Recipe.Load(r.GetValue(recipe)!);
            }
            catch (RecipeException e)
            {
                throw new InputException($"--recipe {e.Message.TrimEnd('.')}");
            }
            // The data spec is checked before anything is computed: a typo fails fast and nothing is written.
            string? spec = r.GetValue(calibration);
            IDataFeed? feed = spec is null ? null
                : DataSpec.Parse(spec, ModelFiles.Inputs(path, RuntimeOptions.Default), new DataSpecOptions { ModelPath = path, VocabPath = r.GetValue(vocab) });
            if (feed is null && plan.NeedsCalibration)
                throw new InputException($"recipe '{plan.Name ?? r.GetValue(recipe)}' calibrates on data; pass --calibration SPEC (e.g. fashion-mnist:onnx-samples/fashion-mnist:train)");
            var notes = new List<string>();
            var options = new RecipeRunOptions
            {
                OutputPath = r.GetValue(output)!,
                Calibration = feed,
                MinCosine = r.GetValue(minCosine),
                Log = notes.Add,
            };
            CompressionResult result;
            try
            {
                result = await ProgressBar.RunAsync(ctx, $"compressing ({plan.Name ?? "recipe"})", bar =>
                {
                    var progress = bar.Reporter<CompressionProgress>((b, p) =>
                        b.Update($"{p.Stage.ToString().ToLowerInvariant()}: {p.Step}", p.Done, p.Total > 0 ? p.Total : null));
                    return RecipeRunner.Run(path, plan, options, progress, ct);
                }, ct).ConfigureAwait(false);
            }
            catch (RecipeException e)
            {
                throw new InputException(e.Message.TrimEnd('.'));
            }
            if (packPath is not null)
            {
                var packed = await ProgressBar.RunAsync(ctx, "packing", _ => ModelPacker.PackFile(result.OutputPath, packPath), ct).ConfigureAwait(false);
                result = result with { Stages = SizeStage.WithPack(result.Stages, result.BytesBefore, packed.PackedBytes, packPath) };
            }
            var doc = DemoCommand.ToDocument(result);
            doc.Table("Size after each stage", [new Column("stage"), new Column("bytes", true), new Column("smaller", true), new Column("detail")],
                result.Stages.Select(st => new[]
                {
                    st.Name, Sizes.Format(st.Bytes), st.Ratio.ToString("0.00", CultureInfo.InvariantCulture) + "x", st.Detail ?? "",
                }));
            doc.Notes("Notes", notes);
            ctx.Render(doc);
            await CommonOptions.WriteReportAsync(ctx, r.GetValue(report), result, feed, null, ct).ConfigureAwait(false);
            return ErrorReporter.Success;
        });
        return command;
    }
}
