using System.CommandLine;
using System.Globalization;
using MLNetCompress.Cli.Output;
using MLNetCompress.Data;
using MLNetCompress.ML.Distillation;
using MLNetCompress.Runtime;

namespace MLNetCompress.Cli.Commands;

/// <summary>
/// <c>soft-labels --teacher M [--teacher M2 ...] --data SPEC -o OUT.(idv|csv|parquet) [--temperature T]
/// [--output-name NAME] [--top-k K] [--shard i/n] [--combine arithmetic|geometric] [--batch-size N] [--n ROWS]
/// [--no-features] [--gpu]</c>: runs the teachers over the data and writes softmax(z / T) per row; and
/// <c>soft-labels merge SHARDS... -o OUT</c>: joins the shard files of a sharded run in row order.
/// </summary>
internal static class SoftLabelsCommand
{
    public static Command Create(Func<ParseResult, CliContext> context)
    {
        var teacher = new Option<string[]>("--teacher", "-m")
        {
            Description = "A teacher .onnx model (repeat for an ensemble; the teachers must take the same inputs and give the same classes).",
            Required = true,
            HelpName = "MODEL",
            AllowMultipleArgumentsPerToken = false,
        };
        var data = new Option<string>("--data", "-d")
        {
            Description = $"The rows to label: {DataSpec.Expected}. Example: fashion-mnist:onnx-samples/fashion-mnist:test.",
            Required = true,
            HelpName = "SPEC",
        };
        var output = new Option<string>("--output", "-o")
        {
            Description = "The soft-label file: .idv (ML.NET binary), .csv or .parquet; a FILE.json description is written beside it. With --shard, OUT.shard-i-of-n.EXT.",
            Required = true,
            HelpName = "OUT",
        };
        var temperature = new Option<double>("--temperature", "-T")
        {
            Description = "The temperature T of softmax(z / T) (default 1; larger T gives softer labels).",
            DefaultValueFactory = _ => 1.0,
            HelpName = "T",
        };
        temperature.CustomParser = r => PruneCommand.ParseNumber(r, "--temperature", v => v > 0 && double.IsFinite(v), "a number > 0") ?? 1.0;
        var outputName = new Option<string?>("--output-name") { Description = "The teacher output with the logits or log-probabilities (default: the first output).", HelpName = "NAME" };
        var topK = EvalCommand.PositiveInt("--top-k", "Write only the K most probable classes and their probabilities (SoftLabelIndices, SoftLabelValues) instead of the dense vector.", "K");
        var shard = new Option<string?>("--shard")
        {
            Description = "Label only shard i of n (0-based): rows [floor(i*N/n), floor((i+1)*N/n)). A finished shard file with the same settings is kept; join the shards with 'soft-labels merge'.",
            HelpName = "i/n",
        };
        var combine = new Option<string>("--combine")
        {
            Description = "How an ensemble is combined: arithmetic (mean of the distributions, default) or geometric (normalized exp of the mean log-probability).",
            DefaultValueFactory = _ => "arithmetic",
            HelpName = "RULE",
        };
        combine.AcceptOnlyFromAmong("arithmetic", "geometric");
        var batch = EvalCommand.PositiveInt("--batch-size", "Rows per ONNX Runtime run (default 64); a model with a fixed batch size uses its own.", "N");
        var rows = EvalCommand.PositiveInt("--n", "Label at most ROWS rows of the data (before sharding).", "ROWS");
        var noFeatures = new Option<bool>("--no-features") { Description = "Leave out the Features column (the teacher's input, flattened)." };
        var gpu = new Option<bool>("--gpu") { Description = "Run the teachers on CUDA device 0 (needs a build with -p:UseGpu=true); falls back to the CPU with a note when CUDA is not there." };
        var vocab = new Option<string?>("--vocab") { Description = "A BERT vocab.txt for text: data when the spec names none.", HelpName = "FILE" };

        var command = new Command("soft-labels",
            "Run one teacher ONNX model or an ensemble over a data set and write its soft labels softmax(z / T), with each row's id, " +
            "hard label and features, as .idv, .csv or .parquet (for ML.NET, Python or Spark students). 'soft-labels merge' joins shards.")
        {
            teacher, data, output, temperature, outputName, topK, shard, combine, batch, rows, noFeatures, gpu, vocab,
        };
        command.Subcommands.Add(CreateMerge(context));
        command.SetAction((ParseResult r, CancellationToken ct) =>
        {
            var settings = new Settings(r.GetValue(teacher) ?? [], r.GetValue(data)!, r.GetValue(output)!, r.GetValue(temperature),
                r.GetValue(outputName), r.GetValue(topK), r.GetValue(shard), r.GetValue(combine)!, r.GetValue(batch) ?? 64,
                r.GetValue(rows), !r.GetValue(noFeatures), r.GetValue(gpu), r.GetValue(vocab));
            return RunAsync(context(r), settings, ct);
        });
        return command;
    }

    private static Command CreateMerge(Func<ParseResult, CliContext> context)
    {
        var shards = new Argument<string[]>("SHARDS") { Description = "The shard files of one sharded run (OUT.shard-i-of-n.EXT), every shard once.", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--output", "-o") { Description = "The merged soft-label file (.idv, .csv or .parquet; any of the three).", Required = true, HelpName = "OUT" };
        var command = new Command("merge", "Join the shard files of a sharded soft-labels run into one file, in row order (written atomically).")
        {
            shards, output,
        };
        command.SetAction(async (ParseResult r, CancellationToken ct) =>
        {
            var ctx = context(r);
            var files = r.GetValue(shards) ?? [];
            var target = r.GetValue(output)!;
            foreach (var f in files)
                if (!File.Exists(f)) throw new InputException($"shard file '{f}' does not exist; check the path");
            var info = await ProgressBar.RunAsync(ctx, "merging shards", _ => Wrap(() => SoftLabelShards.Merge(files, target, ct)), ct).ConfigureAwait(false);
            ctx.Render(new Document().Heading("soft-labels merge").Fields(
                ("output", target),
                ("shards", files.Length.ToString(CultureInfo.InvariantCulture)),
                ("rows", info.Rows.ToString("N0", CultureInfo.InvariantCulture)),
                ("classes", info.Classes.ToString(CultureInfo.InvariantCulture)),
                ("temperature", info.Temperature.ToString(CultureInfo.InvariantCulture))));
            return ErrorReporter.Success;
        });
        return command;
    }

    private sealed record Settings(string[] Teachers, string Data, string Output, double Temperature, string? OutputName, int? TopK,
        string? Shard, string Combine, int BatchSize, int? MaxRows, bool Features, bool Gpu, string? Vocab);

    private static async Task<int> RunAsync(CliContext ctx, Settings s, CancellationToken ct)
    {
        if (s.Teachers.Length == 0) throw new InputException("give a teacher model with --teacher MODEL");
        for (var i = 0; i < s.Teachers.Length; i++) ModelFiles.Require(s.Teachers[i], "--teacher");
        SoftLabelShard? shard = null;
        if (s.Shard is not null)
        {
            try { shard = SoftLabelShard.Parse(s.Shard); }
            catch (FormatException e) { throw new InputException($"--shard: {e.Message}"); }
        }
        Wrap(() => SoftLabelFile.FormatOf(s.Output));
        var runtime = s.Gpu ? RuntimeOptions.Default with { GpuDeviceId = 0, FallbackToCpu = true } : RuntimeOptions.Default;
        var dataOptions = new DataSpecOptions { VocabPath = s.Vocab };
        // The data spec is checked before any teacher runs: a typo fails fast and nothing is written.
        DataSpec.Parse(s.Data, ModelFiles.Inputs(s.Teachers[0], runtime with { GpuDeviceId = null }), dataOptions with { ModelPath = s.Teachers[0] });
        var options = new SoftLabelOptions
        {
            Teachers = s.Teachers,
            OutputName = s.OutputName,
            Temperature = s.Temperature,
            Combine = s.Combine == "geometric" ? SoftLabelCombine.Geometric : SoftLabelCombine.Arithmetic,
            TopK = s.TopK,
            BatchSize = s.BatchSize,
            Shard = shard,
            MaxRows = s.MaxRows,
            IncludeFeatures = s.Features,
            Runtime = runtime,
            DataOptions = dataOptions,
        };
        var result = await ProgressBar.RunAsync(ctx, "soft labels", bar =>
        {
            var progress = bar.Reporter<SoftLabelProgress>((b, p) =>
                b.Update($"labelling: {p.RowsPerSecond.ToString("N0", CultureInfo.InvariantCulture)} rows/s", p.RowsDone, p.TotalRows));
            // Notes (CUDA fallback, a finished shard kept) are worth seeing even with a bar on screen.
            void Log(string note)
            {
                if (!ctx.Quiet) ctx.Err.WriteLine($"note: {note}");
            }
            return ModelFiles.ExplainLoadFailure(s.Teachers[0], () => Wrap(() => SoftLabelGenerator.Generate(s.Data, s.Output, options, progress, Log, ct)), s.Teachers[1..]);
        }, ct).ConfigureAwait(false);

        var info = result.Info;
        ctx.Render(new Document().Heading("soft-labels").Fields(
            ("output", result.Path + (result.Skipped ? " (already complete, kept)" : "")),
            ("teachers", string.Join(", ", info.Teachers) + (info.Teachers.Count > 1 ? $" ({info.Combine.ToString().ToLowerInvariant()} mean)" : "")),
            ("data", info.Data ?? ""),
            ("rows", info.Rows.ToString("N0", CultureInfo.InvariantCulture) + (info.Shard is { } sh ? $" (shard {sh.Index}/{sh.Count}: rows {sh.FirstRow.ToString(CultureInfo.InvariantCulture)}.. of {sh.TotalRows.ToString(CultureInfo.InvariantCulture)})" : "")),
            ("classes", info.Classes.ToString(CultureInfo.InvariantCulture) + (info.TopK is int k ? $", top-{k.ToString(CultureInfo.InvariantCulture)} stored" : ", dense")),
            ("temperature", info.Temperature.ToString(CultureInfo.InvariantCulture)),
            ("features", info.FeatureLength is int f ? $"{f.ToString(CultureInfo.InvariantCulture)} values a row" : "none"),
            ("labels", info.HasLabels ? "from the data" : "unknown (-1)"),
            ("device", result.OnGpu ? "CUDA" : "CPU"),
            ("throughput", result.Skipped ? "n/a" : $"{result.RowsPerSecond.ToString("N0", CultureInfo.InvariantCulture)} rows/s in {result.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s")));
        return ErrorReporter.Success;
    }

    // The engine's soft-label errors are bad input, with their one-line messages as they are.
    private static T Wrap<T>(Func<T> run)
    {
        try
        {
            return run();
        }
        catch (SoftLabelException e)
        {
            throw new InputException(e.Message, e);
        }
    }
}
