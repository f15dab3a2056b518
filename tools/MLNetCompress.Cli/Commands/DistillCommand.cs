using System.CommandLine;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNetCompress.Cli.Output;
using MLNetCompress.Data;
using MLNetCompress.ML.Distillation;
using MLNetCompress.Runtime;

namespace MLNetCompress.Cli.Commands;

/// <summary>
/// <c>distill --soft-labels FILE --trainer lbfgs|sdca|lightgbm --alpha A --temperature T -o student.zip</c>: trains an
/// ML.NET student on a teacher's soft labels and writes it as an ML.NET model zip.
/// </summary>
internal static class DistillCommand
{
    private static readonly Dictionary<string, StudentTrainer> Trainers = new(StringComparer.Ordinal)
    {
        ["lbfgs"] = StudentTrainer.LbfgsMaximumEntropy,
        ["sdca"] = StudentTrainer.SdcaMaximumEntropy,
        ["lightgbm"] = StudentTrainer.LightGbm,
    };

    public static Command Create(Func<ParseResult, CliContext> context)
    {
        var softLabels = new Option<string>("--soft-labels", "-s")
        {
            Description = "The soft-label file (.idv, .csv or .parquet, written by soft-labels, with its Features column).",
            Required = true,
            HelpName = "FILE",
        };
        var trainer = new Option<string>("--trainer")
        {
            Description = "The ML.NET student: lbfgs (LbfgsMaximumEntropy, the default), sdca (SdcaMaximumEntropy) or lightgbm (LightGbm).",
            DefaultValueFactory = _ => "lbfgs",
            HelpName = "NAME",
            // A parser, not AcceptOnlyFromAmong: its message lists the choices on lines the one-line error drops.
            CustomParser = r =>
            {
                var name = r.Tokens.Count == 0 ? "lbfgs" : r.Tokens[^1].Value;
                if (Trainers.ContainsKey(name)) return name;
                r.AddError($"--trainer takes lbfgs, sdca or lightgbm, not '{name}'");
                return "lbfgs";
            },
        };
        var alpha = new Option<double>("--alpha", "-a")
        {
            Description = "Weight of the hard label in the target α·onehot(y) + (1 − α)·p_T, in [0, 1]: 0 (the default) learns the " +
                          "teacher's soft labels only, 1 the hard labels only. Rows without a label use 0.",
            HelpName = "A",
            CustomParser = r => PruneCommand.ParseNumber(r, "--alpha", v => v is >= 0 and <= 1, "a number in [0, 1]") ?? 0,
            DefaultValueFactory = _ => 0,
        };
        var temperature = new Option<double?>("--temperature", "-t")
        {
            Description = "The temperature T the soft labels were made at (default: the file's own). The student is fitted at T " +
                          "and scores at T = 1 (its logits are multiplied back by T).",
            HelpName = "T",
            CustomParser = r => PruneCommand.ParseNumber(r, "--temperature", v => v > 0 && v <= 1000, "a number in (0, 1000]"),
        };
        var output = new Option<string>("--output", "-o") { Description = "The student to write (an ML.NET model .zip).", Required = true, HelpName = "FILE" };
        var seed = new Option<int?>("--seed") { Description = "Seed for the trainer's randomness (SDCA shuffling, LightGBM).", HelpName = "S" };
        var test = new Option<string?>("--test")
        {
            Description = $"Labelled data to report test accuracy on: a soft-label file, or a data spec ({DataSpec.Expected}) " +
                          "with the same preprocessing the soft labels were made with, e.g. fashion-mnist:onnx-samples/fashion-mnist:test.",
            HelpName = "SPEC|FILE",
        };
        var drop = new Option<double>("--drop-threshold")
        {
            Description = "Drop targets below this probability (a row's largest is always kept) and renormalise the rest; 0 keeps all (default 0.001).",
            HelpName = "P",
            CustomParser = r => PruneCommand.ParseNumber(r, "--drop-threshold", v => v is >= 0 and < 1, "a number in [0, 1)") ?? 1e-3,
            DefaultValueFactory = _ => 1e-3,
        };
        var iterations = EvalCommand.PositiveInt("--iterations", "lbfgs/sdca: the optimiser's iteration cap; lightgbm: boosting rounds (default: the trainer's).", "N");
        var l2 = new Option<double?>("--l2")
        {
            Description = "lbfgs/sdca: L2 weight λ of mean cross-entropy + λ/2·|w|² (default: the trainer's).",
            HelpName = "L",
            CustomParser = r => PruneCommand.ParseNumber(r, "--l2", v => v >= 0 && double.IsFinite(v), "a number ≥ 0"),
        };
        var leaves = EvalCommand.PositiveInt("--leaves", "lightgbm: leaves per tree (default: LightGBM's).", "N");
        var rate = new Option<double?>("--learning-rate")
        {
            Description = "lightgbm: the learning rate (default: LightGBM's).",
            HelpName = "R",
            CustomParser = r => PruneCommand.ParseNumber(r, "--learning-rate", v => v > 0 && double.IsFinite(v), "a positive number"),
        };
        var minLeaf = EvalCommand.PositiveInt("--min-leaf", "lightgbm: fewest expanded rows per leaf (default: LightGBM's).", "N");
        var threads = EvalCommand.PositiveInt("--threads", "Trainer threads (default: one per core).", "N");
        var command = new Command("distill",
            "Train an ML.NET student (LbfgsMaximumEntropy, SdcaMaximumEntropy or LightGbm) on a teacher's soft labels: each row " +
            "becomes weighted rows over the classes, so the trainer minimises the cross-entropy against α·onehot(y) + (1 − α)·p_T. " +
            "Writes an ML.NET model zip (mlContext.Model.Load reads it; input: the Features vector) and prints the training size, " +
            "the dropped targets and the accuracy.")
        {
            softLabels, trainer, alpha, temperature, output, seed, test, drop, iterations, l2, leaves, rate, minLeaf, threads,
        };
        command.SetAction((r, ct) =>
        {
            var settings = new Settings(
                r.GetValue(softLabels)!, Trainers[r.GetValue(trainer)!], r.GetValue(alpha), r.GetValue(temperature), r.GetValue(output)!,
                r.GetValue(seed), r.GetValue(test), r.GetValue(drop), r.GetValue(iterations), r.GetValue(l2), r.GetValue(leaves),
                r.GetValue(rate), r.GetValue(minLeaf), r.GetValue(threads));
            return RunAsync(context(r), settings, ct);
        });
        return command;
    }

    internal sealed record Settings(
        string SoftLabels, StudentTrainer Trainer, double Alpha, double? Temperature, string Output, int? Seed, string? Test,
        double DropThreshold, int? Iterations, double? L2, int? Leaves, double? LearningRate, int? MinLeaf, int? Threads);

    private sealed record Outcome(SoftLabelInfo Info, DistillationResult Result, StudentAccuracy? Train, StudentAccuracy? Test, string? TestName, long Bytes);

    private static async Task<int> RunAsync(CliContext ctx, Settings s, CancellationToken ct)
    {
        var outcome = await ProgressBar.RunAsync(ctx, "distilling", bar => Run(s, bar, ct), ct).ConfigureAwait(false);
        ctx.Render(ToDocument(s, outcome));
        return ErrorReporter.Success;
    }

    private static Outcome Run(Settings s, ProgressBar bar, CancellationToken ct)
    {
        if (Directory.Exists(s.SoftLabels))
            throw new InputException($"--soft-labels '{s.SoftLabels}' is a folder; pass the soft-label file (.idv, .csv or .parquet)");
        if (Directory.Exists(s.Output))
            throw new InputException($"--output '{s.Output}' is a folder; name the .zip to write");
        var info = Describe(s.SoftLabels);
        if (info.FeatureLength is null)
            throw new InputException($"'{s.SoftLabels}' has no Features column, so a student has nothing to learn from; regenerate it with features");
        if (s.Temperature is double t && Math.Abs(t - info.Temperature) > 1e-9 * info.Temperature)
            throw new InputException($"the soft labels were made at temperature {F(info.Temperature)}, not {F(t)}; pass --temperature {F(info.Temperature)} or regenerate them at {F(t)}");
        if (s.Alpha > 0 && !info.HasLabels)
            throw new InputException($"--alpha {F(s.Alpha)} needs hard labels, but '{s.SoftLabels}' has none; use --alpha 0 or soft labels made from labelled data");
        bool trees = s.Trainer == StudentTrainer.LightGbm;
        if (trees && s.L2 is not null) throw new InputException("--l2 applies to lbfgs and sdca, not lightgbm");
        if (!trees && (s.Leaves is not null || s.MinLeaf is not null || s.LearningRate is not null))
            throw new InputException("--leaves, --learning-rate and --min-leaf apply to lightgbm only");

        var ml = new MLContext(s.Seed);
        var data = Load(ml, s.SoftLabels);
        ct.ThrowIfCancellationRequested();
        var options = new DistillationOptions
        {
            Trainer = s.Trainer,
            Alpha = s.Alpha,
            Temperature = info.Temperature,
            DropThreshold = s.DropThreshold,
            Seed = s.Seed,
            MaximumIterations = s.Iterations,
            L2Regularization = s.L2 is double l ? (float)l : null,
            NumberOfLeaves = s.Leaves,
            LearningRate = s.LearningRate,
            MinimumExampleCountPerLeaf = s.MinLeaf,
            NumberOfThreads = s.Threads,
        };
        bar.Update($"training {Name(s.Trainer)} on {N(info.Rows)} soft-label rows", 0, null);
        DistillationResult result;
        try
        {
            result = new DistillationTrainer(ml, options).Train(data);
        }
        catch (ArgumentException e)
        {
            throw new InputException($"cannot train on '{s.SoftLabels}': {ErrorReporter.OneLine(e.Message).TrimEnd('.')}", e);
        }
        ct.ThrowIfCancellationRequested();
        bar.Update("scoring", 0, null);
        var train = info.HasLabels ? StudentEvaluation.Accuracy(result.Model, data) : null;
        StudentAccuracy? testAccuracy = null;
        if (s.Test is { } spec)
        {
            var testData = TestData(ml, spec, info, s.SoftLabels);
            testAccuracy = StudentEvaluation.Accuracy(result.Model, testData);
            if (testAccuracy.Rows == 0) throw new InputException($"--test '{spec}' has no labelled rows; give labelled data");
        }
        var dir = Path.GetDirectoryName(Path.GetFullPath(s.Output))!;
        Directory.CreateDirectory(dir);
        var bytes = result.Save(s.Output);
        return new Outcome(info, result, train, testAccuracy, s.Test, bytes);
    }

    private static SoftLabelInfo Describe(string path)
    {
        try
        {
            return SoftLabelFile.ReadInfo(path);
        }
        catch (SoftLabelException e)
        {
            throw new InputException($"--soft-labels: {ErrorReporter.OneLine(e.Message).TrimEnd('.')}", e);
        }
    }

    private static IDataView Load(MLContext ml, string path)
    {
        try
        {
            return SoftLabelFile.Load(ml, path);
        }
        catch (SoftLabelException e)
        {
            throw new InputException(ErrorReporter.OneLine(e.Message).TrimEnd('.'), e);
        }
    }

    /// <summary>The test data: a soft-label file as is, or a data spec read into Features and Label.</summary>
    private static IDataView TestData(MLContext ml, string spec, SoftLabelInfo info, string softLabelPath)
    {
        if (Path.GetExtension(spec).ToLowerInvariant() is ".idv" or ".csv" or ".parquet" && File.Exists(spec))
        {
            var testInfo = Describe(spec);
            if (testInfo.FeatureLength != info.FeatureLength)
                throw new InputException($"--test '{spec}' has {testInfo.FeatureLength?.ToString(CultureInfo.InvariantCulture) ?? "no"} features, the training data {info.FeatureLength}; give soft labels made the same way");
            return Load(ml, spec);
        }
        int features = info.FeatureLength!.Value;
        // The teacher's own input shape when its file is at hand (image feeds need it); a flat [N, F] otherwise.
        var inputs = TeacherInputs(info, softLabelPath) ?? [new ModelInputInfo("input", TensorElementType.Float, [-1, features])];
        var feed = DataSpec.Parse(spec, inputs);
        if (!feed.HasLabels) throw new InputException($"--test '{spec}' has no labels; give labelled data (e.g. fashion-mnist:DIR:test) or a soft-label file");
        var rows = new List<TestRow>();
        foreach (var batch in feed.Batches(256))
        {
            if (batch.Inputs.Count != 1 || batch.Inputs.Values.First().Data is not float[] x || x.Length != (long)batch.RowCount * features)
                throw new InputException($"--test '{spec}' does not give {features} float features per row like the soft labels; use the spec the soft labels were made from");
            for (var i = 0; i < batch.RowCount; i++)
                rows.Add(new TestRow { Features = x.AsSpan(i * features, features).ToArray(), Label = batch.Labels![i] });
        }
        var definition = SchemaDefinition.Create(typeof(TestRow));
        definition[nameof(TestRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, features);
        return ml.Data.LoadFromEnumerable(rows, definition);
    }

    private static IReadOnlyList<ModelInputInfo>? TeacherInputs(SoftLabelInfo info, string softLabelPath)
    {
        if (info.Teachers.Count == 0) return null;
        var name = info.Teachers[0];
        foreach (var candidate in new[] { name, Path.Combine(Path.GetDirectoryName(Path.GetFullPath(softLabelPath))!, Path.GetFileName(name)) })
        {
            if (!File.Exists(candidate)) continue;
            try
            {
                var inputs = ModelFiles.Inputs(candidate, RuntimeOptions.Default);
                return inputs.Count == 1 && inputs[0].ElementType == TensorElementType.Float ? inputs : null;
            }
            catch (OrtRuntimeException)
            {
                return null;
            }
        }
        return null;
    }

    /// <summary>One labelled row of test data read from a spec. Public members: ML.NET reads them by reflection.</summary>
    private sealed class TestRow
    {
        public float[] Features { get; set; } = [];

        public int Label { get; set; }
    }

    private static Document ToDocument(Settings s, Outcome o)
    {
        var e = o.Result.Expansion;
        var doc = new Document();
        doc.Heading($"distill: {Path.GetFileName(s.Output)}");
        var fields = new List<(string, string)>
        {
            ("soft labels", $"{Path.GetFileName(s.SoftLabels)}: {N(e.SourceRows)} rows, {e.ClassCount} classes, {N(e.FeatureCount)} features, T = {F(o.Info.Temperature)}"),
            ("student", $"{Name(s.Trainer)}, alpha {F(s.Alpha)}, trained at T = {F(o.Info.Temperature)}, scores at T = 1"),
            ("training rows", $"{N(e.ExpandedRows)} weighted rows ({e.RowsPerSourceRow.ToString("0.00", CultureInfo.InvariantCulture)} per source row)"),
            ("dropped", $"{N(e.DroppedTargets)} targets below {F(s.DropThreshold)} (mean {Pct(e.MeanDroppedMass, "0.000%")} of a row's mass, at most {Pct(e.MaxDroppedMass, "0.000%")}); {N(e.ZeroTargets)} zero targets"),
        };
        if (o.Train is { } train) fields.Add(("train accuracy", $"{Pct(train.Accuracy, "0.00%")} of {N(train.Rows)}"));
        if (o.Test is { } test) fields.Add(("test accuracy", $"{Pct(test.Accuracy, "0.00%")} of {N(test.Rows)} ({o.TestName})"));
        fields.Add(("wrote", $"{s.Output} ({N(o.Bytes)} bytes)"));
        fields.Add(("elapsed", $"{o.Result.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s training"));
        doc.Fields([.. fields]);
        return doc;
    }

    private static string Name(StudentTrainer t) => t switch
    {
        StudentTrainer.LbfgsMaximumEntropy => "LbfgsMaximumEntropy",
        StudentTrainer.SdcaMaximumEntropy => "SdcaMaximumEntropy",
        _ => "LightGbm",
    };

    private static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);

    private static string F(double v) => v.ToString(CultureInfo.InvariantCulture);

    private static string Pct(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);
}
