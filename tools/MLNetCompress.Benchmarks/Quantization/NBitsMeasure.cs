using System.Diagnostics;
using System.Globalization;
using System.Text;
using MLNetCompress.Benchmarks.Board;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.Dynamic;
using MLNetCompress.Quantization.NBits;
using MLNetCompress.Runtime;

namespace MLNetCompress.Benchmarks.Quantization;

/// <summary>
/// <c>nbits [--out FILE] [--threads T] [--latency-rows N] [--case NAME ...] [--fusions] [--gptq-timing]</c>: MiniLM on real sentences
/// (onnx-samples/text/sentences.txt; the first 200 calibrate GPTQ, the last 200 are evaluated) through dynamic int8
/// (with and without the word embeddings) and 4-bit MatMulNBits (round to nearest and GPTQ). Per case: file size ratio,
/// pooled-embedding cosine against fp32, and latency ratios from interleaved A/B runs (<see cref="ModelComparer"/>) at
/// batch 1 on the sentences as they are and at batch 1 × 128 tokens.
/// </summary>
public static class NBitsMeasure
{
    private sealed record Case(string Name, Func<IDataFeed, IGraphPass> Pass);

    private static readonly Case[] cases =
    [
        new("dynamic-int8", _ => new DynamicQuantizationPass()),
        new("dynamic-int8+emb", _ => new DynamicQuantizationPass(new DynamicQuantizationOptions { QuantizeEmbeddings = true })),
        new("nbits4-rtn-b32+emb", _ => new MatMulNBitsPass(new MatMulNBitsOptions { BlockSize = 32, QuantizeEmbeddings = true })),
        new("nbits4-gptq-b32+emb", c => new MatMulNBitsPass(new MatMulNBitsOptions
        {
            BlockSize = 32, QuantizeEmbeddings = true, Algorithm = NBitsAlgorithm.Gptq, Calibration = c,
            CalibrationSettings = new() { MaxRows = 200, BatchSize = 8, MaxVectorsPerRow = 128 },
        })),
        new("nbits4-rtn-b32", _ => new MatMulNBitsPass(new MatMulNBitsOptions { BlockSize = 32 })),
        new("nbits4-rtn-b32-sym+emb", _ => new MatMulNBitsPass(new MatMulNBitsOptions { BlockSize = 32, Symmetric = true, QuantizeEmbeddings = true })),
        new("nbits4-rtn-b128+emb", _ => new MatMulNBitsPass(new MatMulNBitsOptions { BlockSize = 128, QuantizeEmbeddings = true })),
        new("nbits4-gptq-b128+emb", c => new MatMulNBitsPass(new MatMulNBitsOptions
        {
            BlockSize = 128, QuantizeEmbeddings = true, Algorithm = NBitsAlgorithm.Gptq, Calibration = c,
            CalibrationSettings = new() { MaxRows = 200, BatchSize = 8, MaxVectorsPerRow = 128 },
        })),
    ];

    /// <summary>Entry point.</summary>
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        string? outFile = null;
        int threads = 2, latencyRows = 60;
        bool fusions = false, gptqTiming = false;
        var selected = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--out": outFile = Next(); break;
                case "--threads": threads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--latency-rows": latencyRows = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--case": selected.Add(Next()); break;
                case "--fusions": fusions = true; break;
                case "--gptq-timing": gptqTiming = true; break;
                default:
                    Console.Error.WriteLine($"error: unknown nbits option '{args[i]}'; use --out FILE, --threads T, --latency-rows N, --fusions, --gptq-timing, --case NAME ({string.Join(", ", cases.Select(c => c.Name))}).");
                    return 2;
            }
        }
        OrtSessionFactory.EnsureGlobalThreadPool(threads, Console.Error.WriteLine);
        var work = Path.Combine(Path.GetTempPath(), "mlnetcompress-nbits");
        Directory.CreateDirectory(work);
        var model = BoardModels.All["minilm"](work);
        var runtime = RuntimeOptions.Default with { IntraOpThreads = threads };
        IReadOnlyList<ModelInputInfo> inputs;
        using (var session = OrtSessionFactory.Create(model.Path, runtime)) inputs = ModelInputInfo.FromMetadata(session.InputMetadata);

        var lines = File.ReadAllLines(Path.Combine(BoardModels.SamplesDir, "text", "sentences.txt")).Where(l => l.Trim().Length > 0).ToList();
        BertTokenizerFeeds(model.VocabPath!, inputs, lines, out var calibration, out var eval, out var long128);

        if (gptqTiming)
        {
            GptqTiming(model.Path, calibration);
            return 0;
        }
        var rows = new StringBuilder();
        rows.AppendLine(CultureInfo.InvariantCulture, $"MiniLM ({OnnxModelIO.SizeOnDisk(model.Path):N0} bytes), {threads} threads, {eval.Count} eval sentences, {long128.RowCount} rows of 128 tokens");
        rows.AppendLine("| case | bytes | size ratio | mean cosine | min cosine | quantize s | latency batch 1 (sentences) | latency batch 1 × 128 tokens |");
        rows.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- |");
        Console.WriteLine(rows.ToString().TrimEnd());
        foreach (var c in cases.Where(c => selected.Count == 0 || selected.Contains(c.Name)))
        {
            var candidate = Path.Combine(work, $"minilm.{c.Name}.onnx");
            var clock = Stopwatch.StartNew();
            var result = ModelCompressor.Compress(model.Path, [c.Pass(calibration)], new CompressionOptions
            {
                OutputPath = candidate,
                Probes = eval,
                Verification = new VerifyOptions { MinCosine = 0.5 },
            });
            double seconds = clock.Elapsed.TotalSeconds;
            long before = OnnxModelIO.SizeOnDisk(model.Path), after = OnnxModelIO.SizeOnDisk(candidate);
            // Fidelity on every eval sentence (batches of 16); latency interleaved at batch 1.
            var fidelity = ModelComparer.Compare(model.Path, candidate, eval, new EvalOptions { BatchSize = 16, Runtime = runtime, MinLatencySamples = 1 });
            var pooled = fidelity.Outputs.FirstOrDefault(o => o.Name == "924") ?? fidelity.Outputs[^1];
            var batch1 = ModelComparer.Compare(model.Path, candidate, eval, new EvalOptions { BatchSize = 1, MaxRows = latencyRows, Runtime = runtime, MinLatencySamples = 30 });
            var tokens128 = ModelComparer.Compare(model.Path, candidate, long128, new EvalOptions { BatchSize = 1, MaxRows = latencyRows, Runtime = runtime, MinLatencySamples = 30 });
            string line = string.Create(CultureInfo.InvariantCulture,
                $"| {c.Name} | {after:N0} | {(double)before / after:F2}x | {pooled.MeanCosine:F5} | {pooled.MinCosine:F5} | {seconds:F1} | " +
                $"{batch1.LatencyRatio:F2}x ({batch1.CandidateMedianMs:F2} vs {batch1.BaselineMedianMs:F2} ms) | " +
                $"{tokens128.LatencyRatio:F2}x ({tokens128.CandidateMedianMs:F2} vs {tokens128.BaselineMedianMs:F2} ms) |");
            Console.WriteLine(line);
            rows.AppendLine(line);
            if (fusions) Console.WriteLine($"  ORT-optimized ops: fp32 {OptimizedOps(model.Path, runtime)}; {c.Name} {OptimizedOps(candidate, runtime)}");
            _ = result;
        }
        if (outFile is not null) File.WriteAllText(outFile, rows.ToString());
        return 0;
    }

    /// <summary>Where GPTQ's time goes: the calibration run that accumulates XᵀX of every MatMul input, then the
    /// inverse-Hessian factors, then the error-compensated quantization of every weight.</summary>
    private static void GptqTiming(string path, IDataFeed calibration)
    {
        var graph = ModelGraph.Load(path);
        var main = graph.Main;
        var matMuls = main.Nodes.Where(n => n.OpType == "MatMul" && main.Initializer(n.Input[1]) is not null).ToList();
        var requests = matMuls.Select(n => n.Input[0]).Distinct().Select(v => new MLNetCompress.Calibration.CovarianceRequest(v, -1)).ToList();
        var clock = Stopwatch.StartNew();
        var stats = MLNetCompress.Calibration.CalibrationCollector.CollectCovariances(graph, requests, calibration,
            new MLNetCompress.Calibration.CalibrationOptions { MaxRows = 200, BatchSize = 8, MaxVectorsPerRow = 128 });
        double collect = clock.Elapsed.TotalSeconds;
        clock.Restart();
        var hessians = stats.ToDictionary(kv => kv.Key, kv => GptqSolver.Prepare(kv.Value.SecondMoment(), kv.Value.Dim, 0.01)!);
        double prepare = clock.Elapsed.TotalSeconds;
        clock.Restart();
        foreach (var n in matMuls)
        {
            var w = main.Initializer(n.Input[1])!;
            GptqSolver.Quantize(TensorData.ToFloatArray(w), hessians[n.Input[0]], (int)w.Dims[1], 4, 32, false);
        }
        double solve = clock.Elapsed.TotalSeconds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"GPTQ on MiniLM: {requests.Count} inputs, {stats.Values.First().Count} vectors each; XᵀX calibration {collect:F1} s, inverse-Hessian factors {prepare:F1} s, {matMuls.Count} weights quantized {solve:F1} s"));
    }

    /// <summary>The op counts of the graph ONNX Runtime runs after its optimizations.</summary>
    private static string OptimizedOps(string path, RuntimeOptions runtime)
    {
        var optimized = Path.ChangeExtension(path, ".ort-optimized.onnx");
        using (OrtSessionFactory.Create(path, runtime with { OptimizedModelPath = optimized })) { }
        var ops = ModelGraph.Load(optimized).Scopes.SelectMany(s => s.Nodes).GroupBy(n => n.OpType).OrderByDescending(g => g.Count());
        return string.Join(", ", ops.Select(g => $"{g.Key}x{g.Count()}"));
    }

    /// <summary>Calibration (first half of the sentences), evaluation (second half) and 128-token rows (ten consecutive
    /// sentences joined, cut at 128 tokens).</summary>
    private static void BertTokenizerFeeds(string vocabPath, IReadOnlyList<ModelInputInfo> inputs, List<string> lines,
        out IDataFeed calibration, out IDataFeed eval, out DataFeed long128)
    {
        using var vocab = File.OpenRead(vocabPath);
        var tokenizer = TextFeed.CreateTokenizer(vocab);
        int half = lines.Count / 2;
        calibration = new TextFeed(lines[..half], tokenizer, inputs, 128, name: "sentences 1-200");
        eval = new TextFeed(lines[half..], tokenizer, inputs, 128, name: "sentences 201-400");
        var joined = lines.Chunk(10).Select(chunk => string.Join(" ", chunk)).ToList();
        long128 = new TextFeed(joined, tokenizer, inputs, 128, name: "128-token rows");
    }
}
