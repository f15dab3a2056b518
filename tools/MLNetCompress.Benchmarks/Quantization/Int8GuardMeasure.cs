using System.Globalization;
using System.Numerics.Tensors;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.Dynamic;
using MLNetCompress.Quantization.KernelSafety;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Runtime;

namespace MLNetCompress.Benchmarks.Quantization;

/// <summary>
/// The int8 pair-sum guards compared on one model: for each guard, the quantized model's output cosine against the
/// float model on held-out data (per row: mean and min), its size, and (with <c>--time</c>) the latency ratio, interleaved.
/// Run it natively for the CPU at hand, and under <c>tools/cpu-emulation/dotnet-avx2</c> (no <c>--time</c>: emulated
/// time means nothing) for a CPU without VNNI.
/// </summary>
/// <remarks><c>int8-guards --model M --calibration SPEC --eval SPEC [--vocab F] [--dynamic] [--per-tensor]
/// [--activations u8|s8] [--guards pair-safe,none,...] [--output NAME] [--time] [--rows N]</c>.</remarks>
public static class Int8GuardMeasure
{
    /// <summary>Entry point.</summary>
    public static int Run(string[] args)
    {
        string model = Arg(args, "--model") ?? throw new ArgumentException("--model is required (a path, or a board model: resnet18, minilm, cnn, mlp)");
        string? vocab = Arg(args, "--vocab");
        string? known = null;
        var work0 = Path.Combine(Path.GetTempPath(), "mlnetcompress-guards-models-" + Environment.ProcessId);
        if (Board.BoardModels.All.TryGetValue(model, out var make))
        {
            Directory.CreateDirectory(work0);
            var board = make(work0);
            (model, known, vocab) = (board.Path, board.DataSpec, vocab ?? board.VocabPath);
        }
        string calibration = Arg(args, "--calibration") ?? known ?? throw new ArgumentException("--calibration is required");
        string eval = Arg(args, "--eval") ?? known ?? throw new ArgumentException("--eval is required");
        bool dynamic = args.Contains("--dynamic"), time = args.Contains("--time"), perTensor = args.Contains("--per-tensor");
        var activations = Arg(args, "--activations") == "s8" ? QdqActivationType.S8 : QdqActivationType.U8;
        int rows = int.Parse(Arg(args, "--rows") ?? "64", CultureInfo.InvariantCulture);
        var guards = (Arg(args, "--guards") ?? "none,pair-safe,7bit-weights,7bit-activations,uint8-weights").Split(',');
        var specOptions = new DataSpecOptions { ModelPath = model, VocabPath = vocab };
        using var baseline = ModelRunner.Load(model);
        string outputName = Arg(args, "--output") ?? baseline.OutputNames[0];
        int outputIndex = baseline.OutputNames.ToList().IndexOf(outputName);
        var calibrationFeed = DataSpec.Parse(calibration, baseline.Inputs, specOptions);
        var evalFeed = DataSpec.Parse(eval, baseline.Inputs, specOptions);
        var batches = evalFeed.Batches(1, rows).ToList();
        var expected = batches.Select(b => baseline.Run(b).Outputs[outputIndex].Data.ToArray()).ToList();
        var work = Path.Combine(Path.GetTempPath(), "mlnetcompress-guards-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        Console.WriteLine($"model {Path.GetFileName(model)}, {(dynamic ? "dynamic" : $"static {activations} {(perTensor ? "per-tensor" : "per-channel")}")}, " +
                          $"output '{outputName}', {batches.Count} eval rows, CPU: {CpuName()}");
        Console.WriteLine("| guard | bytes | cosine mean | cosine min | latency ratio |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        try
        {
            foreach (var name in guards)
            {
                var guard = Guards[name];
                if (guard == PairSumGuard.ReducedRangeActivations && (dynamic || activations != QdqActivationType.U8)) continue;
                var graph = ModelGraph.Load(model);
                var passes = dynamic
                    ? new IGraphPass[] { new DynamicQuantizationPass(new DynamicQuantizationOptions { Guard = guard, QuantizeEmbeddings = true }) }
                    : QdqRecipe.Passes(graph.OnnxOpset, new QdqOptions
                    {
                        Calibration = calibrationFeed,
                        Guard = guard,
                        PerChannel = !perTensor,
                        Activations = activations,
                    }).ToArray();
                PassManager.Run(graph, passes);
                string path = Path.Combine(work, name + ".onnx");
                graph.Save(path);
                using var candidate = ModelRunner.Load(path);
                var cosines = batches.Select((b, k) => (double)TensorPrimitives.CosineSimilarity(expected[k], candidate.Run(b).Outputs[outputIndex].Data)).ToList();
                string ratio = "–";
                if (time)
                {
                    var report = ModelComparer.Compare(model, path, evalFeed, new EvalOptions { MaxRows = rows, BatchSize = 1 });
                    ratio = report.LatencyRatio.ToString("0.000", CultureInfo.InvariantCulture);
                }
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {new FileInfo(path).Length:N0} | {cosines.Average():0.00000} | {cosines.Min():0.00000} | {ratio} |"));
            }
            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static readonly Dictionary<string, PairSumGuard> Guards = new(StringComparer.Ordinal)
    {
        ["pair-safe"] = PairSumGuard.PairSafeWeights,
        ["7bit-weights"] = PairSumGuard.SevenBitWeights,
        ["7bit-activations"] = PairSumGuard.ReducedRangeActivations,
        ["uint8-weights"] = PairSumGuard.Uint8Weights,
        ["none"] = PairSumGuard.None,
    };

    /// <summary>The CPU as CPUID reports it (under QEMU, the emulated one).</summary>
    internal static string CpuName() => KernelFacts.CpuDescription();

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
