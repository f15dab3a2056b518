using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using MLNetCompress.Cli.Output;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Inspection;
using MLNetCompress.Onnx;
using MLNetCompress.Runtime;
using Microsoft.ML.OnnxRuntime;

namespace MLNetCompress.Cli.Commands;

/// <summary><c>eval --baseline A --candidate B --data SPEC</c>: how close, how big and how fast a candidate is next to its baseline.</summary>
internal static class EvalCommand
{
    public static Command Create(Func<ParseResult, CliContext> context)
    {
        var baseline = new Option<string>("--baseline", "-a") { Description = "The reference model (.onnx).", Required = true, HelpName = "FILE" };
        var candidate = new Option<string>("--candidate", "-b") { Description = "The model to judge against the baseline (.onnx); it must have the same inputs and outputs.", Required = true, HelpName = "FILE" };
        var data = new Option<string>("--data", "-d")
        {
            Description = $"Data to run both models on: {DataSpec.Expected}. " +
                          "Example: fashion-mnist:onnx-samples/fashion-mnist:test. Options follow '?', e.g. random?rows=64&seed=2.",
            Required = true,
            HelpName = "SPEC",
        };
        var rows = PositiveInt("--n", "Evaluate at most N rows (default: all the data gives).", "N");
        var threads = IntOption("--threads", "Intra-op threads for ONNX Runtime; 0 (the default) lets it choose, one per core. Both models share one pool.", 0, "T");
        threads.Aliases.Add("-t");
        var batch = PositiveInt("--batch-size", "Rows per batch (default 32); a model with a fixed batch size uses its own.", "B");
        var vocab = new Option<string?>("--vocab") { Description = "A BERT vocab.txt for text: data when the spec names none (vocab=FILE).", HelpName = "FILE" };
        var json = new Option<bool>("--json") { Description = "Print the evaluation as JSON (camelCase) instead of tables." };
        var command = new Command("eval",
            "Run a baseline and a candidate model on the same data, interleaved, and compare: file size (with external data), " +
            "output cosine (mean, min), max abs diff, top-1 agreement, accuracy when the data has labels, median latency and peak memory.")
        {
            baseline, candidate, data, rows, threads, batch, vocab, json,
        };
        command.SetAction((r, ct) =>
        {
            var ctx = context(r);
            var settings = new EvalSettings(
                r.GetValue(baseline)!, r.GetValue(candidate)!, r.GetValue(data)!, r.GetValue(rows),
                r.GetValue(threads), r.GetValue(batch) ?? 32, r.GetValue(vocab));
            return RunAsync(ctx, settings, r.GetValue(json), ct);
        });
        return command;
    }

    /// <summary>An optional whole-number option of at least 1.</summary>
    internal static Option<int?> PositiveInt(string name, string description, string helpName)
    {
        var option = new Option<int?>(name) { Description = description, HelpName = helpName };
        // A custom parser (not a validator) so that "many" and "0" both become one-line parse errors.
        option.CustomParser = r => ParseInt(r, name, 1);
        return option;
    }

    /// <summary>A whole-number option of at least <paramref name="min"/>, defaulting to it.</summary>
    private static Option<int> IntOption(string name, string description, int min, string helpName)
    {
        return new Option<int>(name)
        {
            Description = description,
            HelpName = helpName,
            CustomParser = r => ParseInt(r, name, min) ?? min,
            DefaultValueFactory = _ => min,
        };
    }

    private static int? ParseInt(System.CommandLine.Parsing.ArgumentResult r, string name, int min)
    {
        if (r.Tokens.Count == 0) return null;
        var text = r.Tokens[^1].Value;
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v) || v < min)
        {
            r.AddError($"{name} takes a whole number of at least {min}, not '{text}'");
            return null;
        }
        return v;
    }

    internal sealed record EvalSettings(string Baseline, string Candidate, string Data, int? MaxRows, int Threads, int BatchSize, string? Vocab);

    private static async Task<int> RunAsync(CliContext ctx, EvalSettings s, bool json, CancellationToken ct)
    {
        var report = await ProgressBar.RunAsync(ctx, "evaluating", bar => Evaluate(s, bar, ct), ct).ConfigureAwait(false);
        if (json) ctx.WriteRaw(JsonSerializer.Serialize(report, JsonOptions));
        else ctx.Render(ToDocument(report, Path.GetFileName(s.Baseline), Path.GetFileName(s.Candidate)));
        return ErrorReporter.Success;
    }

    /// <summary>Builds the feed against the baseline's inputs and compares the two models. Shared with <c>demo</c>.</summary>
    internal static EvalReport Evaluate(EvalSettings s, ProgressBar bar, CancellationToken ct)
    {
        ModelFiles.Require(s.Baseline, "--baseline");
        ModelFiles.Require(s.Candidate, "--candidate");
        var runtime = RuntimeOptions.Default with { IntraOpThreads = s.Threads };
        bar.Update("reading the baseline's inputs", 0, null);
        var feed = DataSpec.Parse(s.Data, ModelFiles.Inputs(s.Baseline, runtime), new DataSpecOptions { ModelPath = s.Baseline, VocabPath = s.Vocab });
        var options = new EvalOptions
        {
            BatchSize = s.BatchSize,
            MaxRows = s.MaxRows,
            Runtime = runtime,
            BaselineBytes = OnnxModelIO.SizeOnDisk(s.Baseline),
            CandidateBytes = OnnxModelIO.SizeOnDisk(s.Candidate),
        };
        var progress = bar.Reporter<EvalProgress>((b, p) => b.Update(p.Phase switch
        {
            "warmup" => "warming up",
            "latency" => "timing",
            _ => "comparing outputs",
        }, p.RowsDone, p.TotalRows));
        try
        {
            return ModelFiles.ExplainLoadFailure(s.Baseline, () => ModelComparer.Compare(s.Baseline, s.Candidate, feed, options, progress, ct), s.Candidate);
        }
        catch (InvalidOperationException e)
        {
            // The comparer says why two models cannot be compared (inputs, outputs, empty data): that is bad input.
            var why = ErrorReporter.OneLine(e.Message).TrimEnd('.');
            var fix = why.Contains("no rows", StringComparison.Ordinal)
                ? "pass data with at least one row (check the spec and --n)"
                : "the candidate must have the baseline's inputs and outputs (compress the baseline to get one)";
            throw new InputException($"cannot compare the models: {why}; {fix}", e);
        }
    }

    internal static JsonSerializerOptions JsonOptions { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    internal static Document ToDocument(EvalReport r, string baselineName, string candidateName, Document? into = null)
    {
        var doc = into ?? new Document();
        doc.Heading($"eval: {candidateName} against {baselineName}");
        doc.Fields(
            ("data", r.Data),
            ("rows", $"{N(r.Rows)} in batches of {r.BatchSize}; latency: median of {r.LatencySamples} interleaved runs per model{(r.OnGpu ? " on CUDA" : " on CPU")}"),
            ("peak memory", $"{Sizes.Format(r.PeakWorkingSetBytes)} (process working set, both models loaded)"),
            ("elapsed", $"{r.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s"));
        doc.Table("Size and speed", [new(""), new("baseline", true), new("candidate", true), new("candidate / baseline", true)],
        [
            ["file bytes (with external data)", $"{N(r.BaselineBytes)} ({Sizes.Format(r.BaselineBytes)})", $"{N(r.CandidateBytes)} ({Sizes.Format(r.CandidateBytes)})", Ratio(r.SizeRatio)],
            ["median latency per batch", Ms(r.BaselineMedianMs), Ms(r.CandidateMedianMs), Ratio(r.LatencyRatio)],
        ]);
        bool labels = r.Outputs.Any(o => o.BaselineAccuracy is not null);
        var columns = new List<Column> { new("output"), new("cosine mean", true), new("cosine min", true), new("max abs diff", true), new("top-1 agreement", true) };
        if (labels) columns.AddRange([new("accuracy baseline", true), new("accuracy candidate", true)]);
        doc.Table("Output fidelity", columns, r.Outputs.Select(o =>
        {
            var row = new List<string> { o.Name, Fixed(o.MeanCosine, 6), Fixed(o.MinCosine, 6), Sci(o.MaxAbsDiff), Pct(o.Top1Agreement) };
            if (labels) row.AddRange([Pct(o.BaselineAccuracy), Pct(o.CandidateAccuracy)]);
            return row.ToArray();
        }));
        return doc;
    }

    private static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);

    private static string Ratio(double v) => double.IsNaN(v) ? "n/a" : v.ToString("0.000", CultureInfo.InvariantCulture) + "x";

    private static string Ms(double v) => v.ToString(v < 10 ? "0.000" : "0.0", CultureInfo.InvariantCulture) + " ms";

    private static string Fixed(double v, int digits) => double.IsNaN(v) ? "NaN" : v.ToString("F" + digits, CultureInfo.InvariantCulture);

    private static string Sci(double v) => double.IsNaN(v) ? "NaN" : v == 0 ? "0" : v.ToString("0.###e+0", CultureInfo.InvariantCulture);

    private static string Pct(double? v) => v is double d ? d.ToString("0.0%", CultureInfo.InvariantCulture) : "n/a";
}
