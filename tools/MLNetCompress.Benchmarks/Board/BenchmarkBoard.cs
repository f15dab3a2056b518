using System.Globalization;
using System.Text;
using System.Text.Json;
using MLNetCompress.Clustering;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Pruning;
using MLNetCompress.Quantization.Dynamic;
using MLNetCompress.Runtime;

namespace MLNetCompress.Benchmarks.Board;

/// <summary>One row of the board: a model, a recipe, the data, and what the comparison measured.</summary>
public sealed record BoardRow(
    string Case, string Model, string Recipe, string Data, long Rows,
    long BytesBefore, long BytesAfter, double SizeRatio,
    double MeanCosine, double MinCosine, double? Top1Agreement,
    double? BaselineAccuracy, double? CandidateAccuracy,
    double BaselineMedianMs, double CandidateMedianMs, double LatencyRatio, int LatencySamples,
    double CompressSeconds);

/// <summary>
/// The benchmark board: named cases (model × recipe × data) run on this machine, each compared with
/// its original in one interleaved run, written as Markdown and JSON. Later issues add recipes here.
/// </summary>
public static class BenchmarkBoard
{
    /// <summary>Recipes by name: the passes a case runs. <c>identity</c> runs none (the board's noise floor).</summary>
    public static IReadOnlyDictionary<string, Func<IReadOnlyList<IGraphPass>>> Recipes { get; } = AllRecipes();

    private static Dictionary<string, Func<IReadOnlyList<IGraphPass>>> AllRecipes()
    {
        var recipes = new Dictionary<string, Func<IReadOnlyList<IGraphPass>>>
        {
            ["identity"] = () => [],
            ["demo"] = ModelCompressor.DemoPasses,
            // Data-free recipes of the pruning and weight-sharing family.
            ["prune-global50"] = () => [new MagnitudePruningPass(new PruningOptions { Sparsity = 0.5, Global = true }), new SparseStoragePass()],
            ["cluster-k16"] = () => [new KMeansClusteringPass(new KMeansClusteringOptions { Clusters = 16 })],
            ["cluster-k256"] = () => [new KMeansClusteringPass(new KMeansClusteringOptions { Clusters = 256 })],
            // Transformer MatMuls: int8 weights, activations quantized at run time (DynamicQuantizeMatMul).
            ["dynamic-int8"] = () => [new DynamicQuantizationPass()],
        };
        foreach (var (name, recipe) in LowRankCases.Recipes) recipes[name] = recipe;
        return recipes;
    }

    /// <summary>The default cases: every model against itself and against the demo compression.</summary>
    public static IReadOnlyList<string> DefaultCases { get; } =
    [
        "mlp/identity", "mlp/demo", "cnn/identity", "cnn/demo",
        "resnet18/identity", "resnet18/demo", "minilm/identity", "minilm/demo",
    ];

    /// <summary>Entry point: <c>board [--case MODEL/RECIPE ...] [--out DIR] [--n ROWS] [--threads T]</c>.</summary>
    public static int Run(string[] args)
    {
        var cases = new List<string>();
        string outDir = "board-out";
        int? rows = null;
        int threads = 2;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--case": cases.Add(Next()); break;
                case "--out": outDir = Next(); break;
                case "--n": rows = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--threads": threads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                default:
                    Console.Error.WriteLine($"error: unknown board option '{args[i]}'; use --case MODEL/RECIPE, --out DIR, --n ROWS, --threads T.");
                    return 2;
            }
        }
        if (cases.Count == 0) cases.AddRange(DefaultCases);
        // One global ONNX Runtime thread pool for every session: fair A/B timings (ORT-FACTS.md).
        OrtSessionFactory.EnsureGlobalThreadPool(threads, Console.Error.WriteLine);
        Directory.CreateDirectory(outDir);
        var work = Path.Combine(outDir, "models");
        Directory.CreateDirectory(work);

        var results = new List<BoardRow>();
        foreach (var name in cases)
        {
            try
            {
                Console.Error.WriteLine($"board: {name} ...");
                results.Add(RunCase(name, work, rows, threads));
            }
            catch (Exception e) when (e is CompressionException or DataSpecException or OnnxFormatException or FileNotFoundException or ArgumentException)
            {
                Console.Error.WriteLine($"error: case {name}: {e.Message}");
                return 1;
            }
        }
        var markdown = ToMarkdown(results, threads);
        File.WriteAllText(Path.Combine(outDir, "board.md"), markdown);
        File.WriteAllText(Path.Combine(outDir, "board.json"),
            JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase }));
        Console.WriteLine(markdown);
        return 0;
    }

    /// <summary>Runs one case: compress with the recipe (or copy for identity), then compare interleaved.</summary>
    public static BoardRow RunCase(string caseName, string workDir, int? maxRows, int threads)
    {
        var parts = caseName.Split('/');
        if (parts.Length != 2 || !BoardModels.All.TryGetValue(parts[0], out var modelFactory) || !Recipes.TryGetValue(parts[1], out var recipe))
            throw new ArgumentException($"unknown case '{caseName}'; expected MODEL/RECIPE with MODEL in {{{string.Join(",", BoardModels.All.Keys)}}} and RECIPE in {{{string.Join(",", Recipes.Keys)}}}");
        var model = modelFactory(workDir);
        var runtime = RuntimeOptions.Default with { IntraOpThreads = threads };
        IDataFeed Feed()
        {
            using var probe = ModelRunner.Load(model.Path, runtime);
            return DataSpec.Parse(model.DataSpec, probe.Session, new DataSpecOptions { ModelPath = model.Path, VocabPath = model.VocabPath, Runtime = runtime });
        }

        string candidate = model.Path;
        double compressSeconds = 0;
        var passes = recipe();
        if (passes.Count > 0)
        {
            candidate = Path.Combine(workDir, $"{model.Name}.{parts[1]}.onnx");
            // The board measures fidelity itself; the verification gate here only stops a broken model, on the model's own data.
            var result = ModelCompressor.Compress(model.Path, passes, new CompressionOptions
            {
                OutputPath = candidate,
                Probes = Feed(),
                Verification = new VerifyOptions { MinCosine = 0.5 },
            });
            compressSeconds = result.Elapsed.TotalSeconds;
        }

        var feed = Feed();
        var report = ModelComparer.Compare(ModelSource.FromFile(model.Path), ModelSource.FromFile(candidate), feed,
            new EvalOptions
            {
                MaxRows = maxRows,
                Runtime = runtime,
                BaselineBytes = OnnxModelIO.SizeOnDisk(model.Path),
                CandidateBytes = OnnxModelIO.SizeOnDisk(candidate),
                MinLatencySamples = 30,
            });
        var main = report.Outputs[0];
        return new BoardRow(caseName, model.Name, parts[1], model.DataSpec.Split(':')[0], report.Rows,
            report.BaselineBytes, report.CandidateBytes, (double)report.BaselineBytes / report.CandidateBytes,
            report.Outputs.Average(o => o.MeanCosine), report.Outputs.Min(o => o.MinCosine), main.Top1Agreement,
            main.BaselineAccuracy, main.CandidateAccuracy,
            report.BaselineMedianMs, report.CandidateMedianMs, report.LatencyRatio, report.LatencySamples, compressSeconds);
    }

    /// <summary>The board as a Markdown table.</summary>
    public static string ToMarkdown(IReadOnlyList<BoardRow> rows, int threads)
    {
        static string F(double? v, string format) => v is double d && !double.IsNaN(d) ? d.ToString(format, CultureInfo.InvariantCulture) : "–";
        var sb = new StringBuilder();
        sb.AppendLine($"Benchmark board — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {threads} ONNX Runtime threads (global pool), latency interleaved A/B in one run.");
        sb.AppendLine();
        sb.AppendLine("| case | data | rows | bytes before | bytes after | smaller | cosine mean | cosine min | top-1 agree | acc before | acc after | ms before | ms after | latency ratio |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
            sb.AppendLine($"| {r.Case} | {r.Data} | {r.Rows} | {r.BytesBefore:N0} | {r.BytesAfter:N0} | {F(r.SizeRatio, "0.00")}× | {F(r.MeanCosine, "0.00000")} | {F(r.MinCosine, "0.00000")} | {F(r.Top1Agreement, "0.000")} | {F(r.BaselineAccuracy, "0.000")} | {F(r.CandidateAccuracy, "0.000")} | {F(r.BaselineMedianMs, "0.000")} | {F(r.CandidateMedianMs, "0.000")} | {F(r.LatencyRatio, "0.00")} |");
        return sb.ToString();
    }
}
