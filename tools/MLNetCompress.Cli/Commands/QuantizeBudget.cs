using System.CommandLine;
using System.Globalization;
using MLNetCompress.Cli.Output;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Quantization.Budget;
using MLNetCompress.Quantization.Qdq;

namespace MLNetCompress.Cli.Commands;

/// <summary>What <c>quantize --max-drop X [--metric M] [--time-budget S] [--budget-search S]</c> and
/// <c>--exclude-ops TYPES</c> asked for.</summary>
internal sealed record QuantizeBudgetSettings(double? MaxDrop, string Metric, double? TimeBudgetSeconds, string Search, string[] ExcludeOps)
{
    /// <summary>Checks the combination before anything runs.</summary>
    /// <exception cref="InputException">An option is out of range or does not apply.</exception>
    public void Check(bool dynamic, bool hasEval)
    {
        if (MaxDrop is null)
        {
            if (Metric != "auto") throw new InputException("--metric only applies with --max-drop X; add --max-drop or drop --metric");
            if (TimeBudgetSeconds is not null) throw new InputException("--time-budget only applies with --max-drop X; add --max-drop or drop --time-budget");
        }
        else
        {
            if (dynamic) throw new InputException("--max-drop applies to static quantization; drop --dynamic or --max-drop");
            if (!hasEval) throw new InputException("--max-drop needs --eval SPEC, the data the metric is measured on (ideally not the calibration data)");
            double limit = Metric is "cosine" or "min-cosine" ? 2 : 100;
            if (!(MaxDrop >= 0 && MaxDrop <= limit))
                throw new InputException($"--max-drop takes a value in [0, {limit}] for the {Metric} metric, not {MaxDrop.Value.ToString(CultureInfo.InvariantCulture)} " +
                                         "(percentage points for accuracy and agreement, absolute cosine for cosine)");
            if (TimeBudgetSeconds is <= 0) throw new InputException($"--time-budget takes a positive number of seconds, not {TimeBudgetSeconds.Value.ToString(CultureInfo.InvariantCulture)}");
        }
        if (ExcludeOps.Length > 0 && dynamic)
            throw new InputException("--exclude-ops applies to static quantization; with --dynamic, leave nodes float with --exclude NODES");
    }

    /// <summary>The op types to quantize: <paramref name="ops"/> less those named in <c>--exclude-ops</c>.</summary>
    /// <exception cref="InputException">A name is not an op the static path quantizes.</exception>
    public IReadOnlySet<string> Ops(IReadOnlySet<string> ops)
    {
        var known = QdqHandlerRegistry.OpTypes.Order(StringComparer.Ordinal).ToList();
        var excluded = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in ExcludeOps.SelectMany(a => a.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
        {
            // Op types are case-sensitive in ONNX; a case slip is forgiven since no two of them differ only in case.
            var op = known.FirstOrDefault(k => string.Equals(k, name, StringComparison.OrdinalIgnoreCase))
                     ?? throw new InputException($"--exclude-ops: '{name}' is not an op static quantization handles; it handles {string.Join(", ", known)}");
            excluded.Add(op);
        }
        return excluded.Count == 0 ? ops : ops.Where(o => !excluded.Contains(o)).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>The library's metric.</summary>
    public BudgetMetric ParsedMetric => Metric switch
    {
        "accuracy" => BudgetMetric.Accuracy,
        "agreement" => BudgetMetric.Agreement,
        "cosine" => BudgetMetric.Cosine,
        "min-cosine" => BudgetMetric.MinCosine,
        _ => BudgetMetric.Auto,
    };
}

/// <summary>The accuracy-budget options of <c>quantize</c>, and the search run and report. Kept beside
/// <see cref="QuantizeCommand"/> so that the command's file holds only their registration and one branch.</summary>
internal sealed class QuantizeBudgetOptions
{
    private readonly Option<double?> _maxDrop = new("--max-drop")
    {
        Description = "Accuracy budget: the largest drop of --metric allowed against the float model, measured on --eval. Each layer's " +
                      "sensitivity is measured (it alone quantized), then the most sensitive layers stay float until the drop is within X. " +
                      "The best model found is always written (within the budget: the most layers quantized; otherwise the smallest drop, " +
                      "with a warning, still exit 0), with a table of every try. Percentage points for accuracy and agreement, absolute for cosine.",
        HelpName = "X",
    };

    private readonly Option<string> _metric = new("--metric")
    {
        Description = "The --max-drop metric: accuracy (needs labelled --eval data), agreement (top-1 agreement with the float model), " +
                      "cosine (mean output cosine) or min-cosine (the lowest row's cosine, what the verification gate checks); default: " +
                      "accuracy when the data has labels, else agreement for class scores, else cosine.",
        DefaultValueFactory = _ => "auto",
        HelpName = "METRIC",
    };

    private readonly Option<double?> _timeBudget = new("--time-budget")
    {
        Description = "Bound the --max-drop search to about this many seconds (checked between tries); the best model so far is written and the report says the search stopped early.",
        HelpName = "SECONDS",
    };

    private readonly Option<string> _search = new("--budget-search")
    {
        Description = "How --max-drop walks the layers ranked by sensitivity: binary (default; about log2(layers) tries) or greedy (one more float layer per try).",
        DefaultValueFactory = _ => "binary",
        HelpName = "STRATEGY",
    };

    private readonly Option<string[]> _excludeOps = new("--exclude-ops")
    {
        Description = "Op types static quantization leaves float, e.g. --exclude-ops Gemm,MatMul (comma or space separated).",
        HelpName = "TYPES",
        AllowMultipleArgumentsPerToken = true,
    };

    public QuantizeBudgetOptions()
    {
        _metric.AcceptOnlyFromAmong("auto", "accuracy", "agreement", "cosine", "min-cosine");
        _search.AcceptOnlyFromAmong("binary", "greedy");
    }

    /// <summary>The options, to add to the command.</summary>
    public IEnumerable<Option> All => [_maxDrop, _metric, _timeBudget, _search, _excludeOps];

    /// <summary>The values given.</summary>
    public QuantizeBudgetSettings Read(ParseResult r) =>
        new(r.GetValue(_maxDrop), r.GetValue(_metric)!, r.GetValue(_timeBudget), r.GetValue(_search)!, r.GetValue(_excludeOps) ?? []);

    /// <summary>Runs the search under a progress bar; library errors become one-line input errors.</summary>
    public static async Task<BudgetResult> SearchAsync(CliContext ctx, ModelGraph graph, QdqOptions options, IDataFeed eval,
        QuantizeBudgetSettings s, CancellationToken ct)
    {
        var budget = new AccuracyBudgetOptions
        {
            Eval = eval,
            MaxDrop = s.MaxDrop!.Value,
            Metric = s.ParsedMetric,
            TimeBudget = s.TimeBudgetSeconds is double t ? TimeSpan.FromSeconds(t) : null,
            Search = s.Search == "greedy" ? BudgetSearchStrategy.Greedy : BudgetSearchStrategy.Binary,
        };
        try
        {
            return await ProgressBar.RunAsync(ctx, "accuracy budget", bar =>
            {
                var progress = bar.Reporter<BudgetProgress>((b, p) => b.Update($"{p.Phase}: {p.Step}", p.Done, p.Total));
                return AccuracyBudgetSearch.Run(graph, options, budget, progress, ct);
            }, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            throw new InputException($"accuracy budget: {ErrorReporter.OneLine(e.Message).TrimEnd('.')}; nothing was written");
        }
    }

    /// <summary>Adds the budget's summary and the table of tries to the report.</summary>
    public static void Render(Document doc, BudgetResult r)
    {
        var best = r.Best;
        doc.Fields(
            ("budget", $"{r.Metric.ToString().ToLowerInvariant()} drop at most {r.FormatDrop(r.MaxDrop)}; float model {r.Format(r.BaselineMetric)}"),
            ("budget result", $"{(r.BudgetMet ? "met" : "NOT met")}: {best.QuantizedLayers.Count} of {r.Layers.Count} layers quantized, " +
                              $"{r.Format(best.Metric)} (drop {r.FormatDrop(best.Drop)}); {best.Excluded.Count} kept float" +
                              (best.Excluded.Count > 0 ? $" ({string.Join(", ", best.Excluded)})" : "")),
            ("search", $"{r.Candidates.Count} tries in {r.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s" +
                       (r.StoppedByTime ? ", stopped early by --time-budget" : "")));
        var rows = r.Candidates.Select((c, i) => new[]
        {
            (i + 1).ToString(CultureInfo.InvariantCulture),
            c.Step.ToString().ToLowerInvariant(),
            c.Describe(),
            $"{c.QuantizedLayers.Count}/{r.Layers.Count}",
            r.Format(c.Metric),
            r.FormatDrop(c.Drop),
            c.MeetsBudget ? "yes" : "no",
            (c.Bytes / 1024.0).ToString("N0", CultureInfo.InvariantCulture) + " KiB",
            c.LatencyRatio.ToString("0.00", CultureInfo.InvariantCulture) + "x",
            ReferenceEquals(c, best) ? "<- written" : "",
        });
        doc.Table("Accuracy budget: what was tried (latency: median per batch over the float model's, not interleaved)",
            [new Column("#", true), new Column("step"), new Column("try"), new Column("quantized", true), new Column("metric", true),
             new Column("drop", true), new Column("within"), new Column("size", true), new Column("latency", true), new Column("")],
            rows);
    }
}
