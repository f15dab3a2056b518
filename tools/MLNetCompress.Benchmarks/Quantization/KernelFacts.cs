using System.Globalization;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics.X86;
using MLNetCompress.Benchmarks.Board;
using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization.Dynamic;
using MLNetCompress.Quantization.KernelSafety;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Runtime;
using Microsoft.ML.OnnxRuntime;

namespace MLNetCompress.Benchmarks.Quantization;

/// <summary>
/// What ONNX Runtime does with S8S8, U8S8 and U8U8 int8 models on the CPU at hand (the facts behind
/// <c>docs/int8-kernels.md</c>): which fused ops its optimizer makes of each, how fast each runs against fp32
/// (interleaved, one shared thread pool), and whether its integer kernels match its float reference ops on a
/// convolution built so that u8×s8 pair sums overflow int16.
/// </summary>
/// <remarks>
/// <para><c>kernel-facts [--numerics-only | --ops-only | --speed-only] [--runs N]</c>. Without a flag it runs the
/// numerics, the op listing and the timing. Run the numerics both natively and on an emulated CPU without VNNI:
/// <c>tools/cpu-emulation/dotnet-avx2 tools/MLNetCompress.Benchmarks/bin/Release/net10.0/MLNetCompress.Benchmarks.dll
/// kernel-facts --numerics-only</c> (emulated time means nothing; only the numbers are real there).</para>
/// <para>Numerics: a static QDQ conv model (x[4,8,10,10] mostly near the top of its range → Conv 8→6 3×3 with
/// all-positive weights → Relu → Conv 6→4 1×1) quantized per configuration, run at ORT_ENABLE_ALL (the fused integer
/// kernels) and at ORT_DISABLE_ALL (DequantizeLinear → float Conv → QuantizeLinear: the float reference on the same
/// file). Dynamic: x[6,64] (same kind of data) → MatMul 64×48 (all-positive) → Relu → MatMul 48×40, quantized by
/// <see cref="DynamicQuantizationPass"/>; its reference is the same file with each MatMulInteger replaced by exact
/// float arithmetic on the integer codes (Cast → Sub(zero point) → MatMul → Cast), since ORT's MatMulInteger itself
/// runs on the same integer kernels.</para>
/// </remarks>
public static class KernelFacts
{
    /// <summary>One quantization configuration.</summary>
    private sealed record Config(string Name, string Key, QdqActivationType Activations, PairSumGuard Guard);

    private static readonly Config[] Configs =
    [
        new("U8S8 guard None", "u8s8-none", QdqActivationType.U8, PairSumGuard.None),
        new("U8S8 pair-safe (default)", "u8s8-pairsafe", QdqActivationType.U8, PairSumGuard.PairSafeWeights),
        new("U8U8 (Uint8Weights)", "u8u8", QdqActivationType.U8, PairSumGuard.Uint8Weights),
        new("S8S8 guard None", "s8s8-none", QdqActivationType.S8, PairSumGuard.None),
        new("S8S8 pair-safe", "s8s8-pairsafe", QdqActivationType.S8, PairSumGuard.PairSafeWeights),
        new("S8 act. + Uint8Weights", "s8u8", QdqActivationType.S8, PairSumGuard.Uint8Weights),
        new("U8S8 7-bit weights", "u8s8-7bitw", QdqActivationType.U8, PairSumGuard.SevenBitWeights),
        new("U8S8 7-bit activations", "u8s8-7bita", QdqActivationType.U8, PairSumGuard.ReducedRangeActivations),
    ];

    private static readonly (string Name, PairSumGuard Guard)[] DynamicGuards =
    [
        ("dynamic guard None", PairSumGuard.None),
        ("dynamic pair-safe (default)", PairSumGuard.PairSafeWeights),
        ("dynamic Uint8Weights (U8U8)", PairSumGuard.Uint8Weights),
    ];

    /// <summary>Entry point.</summary>
    public static int Run(string[] args)
    {
        bool numericsOnly = args.Contains("--numerics-only"), opsOnly = args.Contains("--ops-only"), speedOnly = args.Contains("--speed-only");
        int runs = int.Parse(Arg(args, "--runs") ?? "40", CultureInfo.InvariantCulture);
        if (runs < 20) throw new ArgumentException("--runs must be at least 20");
        var work = Path.Combine(Path.GetTempPath(), "mlnetcompress-kernel-facts-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        try
        {
            OrtSessionFactory.EnsureGlobalThreadPool();
            Console.WriteLine($"CPU: {CpuDescription()}");
            Console.WriteLine($"ONNX Runtime {OrtEnv.Instance().GetVersionString()}, {Environment.ProcessorCount} logical processors visible to .NET, " +
                              $".NET {Environment.Version}");
            Console.WriteLine();
            if (!opsOnly && !speedOnly)
            {
                StaticNumerics(work);
                DynamicNumerics(work);
            }
            if (!numericsOnly && !speedOnly) OpListing(work);
            if (!numericsOnly && !opsOnly) Speed(work, runs);
            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    // ---------------------------------------------------------------- numerics

    private static void StaticNumerics(string work)
    {
        StaticNumerics(work, "conv", SaturatingConvModel(),
            "Conv 8→6 3×3 (all-positive weights, inputs near the top of the range) → Relu → Conv 6→4 1×1, 4 rows");
        StaticNumerics(work, "branch", BranchingConvModel(),
            "x feeds two Convs 8→6 3×3 (all-positive weights) → Relu each → Add → Conv 6→4 1×1, 4 rows " +
            "(x's QuantizeLinear has two consumers, as a residual block's input has)");
    }

    private static void StaticNumerics(string work, string tag, byte[] modelBytes, string title)
    {
        const int rows = 4;
        var x = Values(rows * 800, 13).Select((v, i) => i % 97 == 0 ? 0f : 0.8f + 0.2f * MathF.Abs(v)).ToArray();
        var feed = Feed(modelBytes, x, [rows, 8, 10, 10]);
        float[] fp32 = Outputs(modelBytes, GraphOptimizationLevel.ORT_ENABLE_ALL, feed, rows);

        Console.WriteLine($"## Static QDQ numerics: {title}");
        Console.WriteLine("fused = ORT_ENABLE_ALL (integer kernels), reference = ORT_DISABLE_ALL on the same file (DequantizeLinear → float Conv → QuantizeLinear).");
        Console.WriteLine();
        Console.WriteLine("| configuration | ops after ORT_ENABLE_ALL | max abs(fused − reference) / peak | outputs off by > 1% of peak | max abs(reference − fp32) / peak |");
        Console.WriteLine("|---|---|---:|---:|---:|");
        foreach (var c in Configs)
        {
            var graph = ModelGraph.FromBytes(modelBytes);
            var options = new QdqOptions
            {
                Calibration = feed,
                Guard = c.Guard,
                Activations = c.Activations,
                CalibrationSettings = new CalibrationOptions { MaxRows = rows, BatchSize = 1 },
            };
            PassManager.Run(graph, QdqRecipe.Passes(graph.OnnxOpset, EveryLayer(options)));
            var quantized = graph.ToBytes();
            string optimized = Path.Combine(work, $"{tag}-{c.Key}.all.onnx");
            var fused = Outputs(quantized, GraphOptimizationLevel.ORT_ENABLE_ALL, feed, rows, optimized);
            var reference = Outputs(quantized, GraphOptimizationLevel.ORT_DISABLE_ALL, feed, rows);
            var (rel, share) = Difference(fused, reference);
            var (vsFloat, _) = Difference(reference, fp32);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {c.Name} | {OpSummary(optimized, quantizedOnly: false)} | {rel:P3} | {share:P1} | {vsFloat:P3} |"));
            if (c.Guard != PairSumGuard.None) continue;
            string precise = Path.Combine(work, $"{tag}-{c.Key}.precision.all.onnx");
            var fusedPrecise = Outputs(quantized, GraphOptimizationLevel.ORT_ENABLE_ALL, feed, rows, precise, precisionMode: true);
            var (relPrecise, sharePrecise) = Difference(fusedPrecise, reference);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {c.Name} + {PrecisionModeKey}=1 | {OpSummary(precise, quantizedOnly: false)} | {relPrecise:P3} | {sharePrecise:P1} | {vsFloat:P3} |"));
        }
        Console.WriteLine();
    }

    private static void DynamicNumerics(string work)
    {
        const int rows = 6;
        var modelBytes = DynamicMatMulModel();
        var x = Values(rows * 64, 5).Select((v, i) => i % 31 == 0 ? 0f : 0.8f + 0.2f * MathF.Abs(v)).ToArray();
        var feed = Feed(modelBytes, x, [rows, 64]);
        float[] fp32 = Outputs(modelBytes, GraphOptimizationLevel.ORT_ENABLE_ALL, feed, rows);

        Console.WriteLine("## Dynamic quantization numerics: x[6,64] (near the top of the range) → MatMul 64×48 (all-positive) → Relu → MatMul 48×40");
        Console.WriteLine("reference = the same file with each MatMulInteger computed exactly in float (Cast → Sub(zero point) → MatMul → Cast), ORT_DISABLE_ALL.");
        Console.WriteLine("fused = ORT_ENABLE_ALL; unfused = ORT_DISABLE_ALL (DynamicQuantizeLinear → MatMulInteger → Cast → Mul: MatMulInteger runs on the same integer kernels).");
        Console.WriteLine();
        Console.WriteLine("| configuration | ops after ORT_ENABLE_ALL | max abs(fused − reference) / peak | outputs off by > 1% of peak | max abs(unfused − reference) / peak | max abs(reference − fp32) / peak |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|");
        foreach (var (name, guard) in DynamicGuards)
        {
            var graph = ModelGraph.FromBytes(modelBytes);
            PassManager.Run(graph, [new DynamicQuantizationPass(new DynamicQuantizationOptions { Guard = guard, MinElements = 0 })]);
            var quantized = graph.ToBytes();
            var referenceModel = ExactMatMulIntegerReference(quantized);
            string optimized = Path.Combine(work, $"dyn-{guard}.all.onnx");
            var fused = Outputs(quantized, GraphOptimizationLevel.ORT_ENABLE_ALL, feed, rows, optimized);
            var unfused = Outputs(quantized, GraphOptimizationLevel.ORT_DISABLE_ALL, feed, rows);
            var reference = Outputs(referenceModel, GraphOptimizationLevel.ORT_DISABLE_ALL, feed, rows);
            var (rel, share) = Difference(fused, reference);
            var (relUnfused, _) = Difference(unfused, reference);
            var (vsFloat, _) = Difference(reference, fp32);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {OpSummary(optimized, quantizedOnly: false)} | {rel:P3} | {share:P1} | {relUnfused:P3} | {vsFloat:P3} |"));
            if (guard != PairSumGuard.None) continue;
            string precise = Path.Combine(work, $"dyn-{guard}.precision.all.onnx");
            var fusedPrecise = Outputs(quantized, GraphOptimizationLevel.ORT_ENABLE_ALL, feed, rows, precise, precisionMode: true);
            var (relPrecise, sharePrecise) = Difference(fusedPrecise, reference);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} + {PrecisionModeKey}=1 | {OpSummary(precise, quantizedOnly: false)} | {relPrecise:P3} | {sharePrecise:P1} | – | {vsFloat:P3} |"));
        }
        Console.WriteLine();
    }

    /// <summary>max |a − b| over the peak |b|, and the share of values where |a − b| exceeds 1% of that peak.</summary>
    private static (double Relative, double ShareOver1Percent) Difference(float[] a, float[] b)
    {
        float peak = b.Max(MathF.Abs);
        if (peak == 0) return (double.NaN, double.NaN);
        double worst = 0;
        int over = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs(a[i] - b[i]);
            worst = Math.Max(worst, d);
            if (d > 0.01 * peak) over++;
        }
        return (worst / peak, (double)over / a.Length);
    }

    private static float[] Outputs(byte[] model, GraphOptimizationLevel level, IDataFeed feed, int rows, string? optimizedPath = null,
        bool precisionMode = false)
    {
        var runtime = new RuntimeOptions(GraphOptimizationLevel: level, OptimizedModelPath: optimizedPath);
        ModelRunner runner;
        if (precisionMode)
        {
            // ONNX Runtime's own opt-in: on CPUs whose u8×s8 kernels can overflow (MlasPlatformU8S8Overflow), its
            // Avx2WeightS8ToU8Transformer rewrites int8 weights as uint8 at load so the U8U8 kernels run.
            using var so = OrtSessionFactory.CreateSessionOptions(runtime, null, out _);
            so.AddSessionConfigEntry(PrecisionModeKey, "1");
            runner = new ModelRunner(new InferenceSession(model, so));
        }
        else
        {
            runner = ModelRunner.Load(model, runtime);
        }
        using (runner) return feed.Batches(rows).SelectMany(b => runner.Run(b).Outputs[0].Data.ToArray()).ToArray();
    }

    private const string PrecisionModeKey = "session.x64quantprecision";

    /// <summary>A runner at ORT_ENABLE_ALL on the shared pool, with ONNX Runtime's precision mode when asked.</summary>
    private static ModelRunner LoadRunner(string path, bool precisionMode)
    {
        if (!precisionMode) return ModelRunner.Load(path);
        using var so = OrtSessionFactory.CreateSessionOptions(RuntimeOptions.Default, null, out _);
        so.AddSessionConfigEntry(PrecisionModeKey, "1");
        return new ModelRunner(new InferenceSession(path, so));
    }

    private static NpyFeed Feed(byte[] model, float[] data, long[] shape)
    {
        using var stream = new MemoryStream();
        NpyArray.Write(stream, data, shape);
        stream.Position = 0;
        using var runner = ModelRunner.Load(model);
        return new NpyFeed(NpyArray.Read(stream, "x.npy"), runner.Inputs);
    }

    /// <summary>The conv model of <c>PairSumSaturationTests.SaturatingConvs</c>, re-created (same seeds and shapes).</summary>
    private static byte[] SaturatingConvModel()
    {
        var w1 = Values(6 * 8 * 9, 11).Select(v => 0.6f + 0.4f * MathF.Abs(v)).ToArray();
        var model = NewModel(13);
        var g = model.Graph;
        g.Input.Add(ValueInfo("x", "batch", 8, 10, 10));
        g.Output.Add(ValueInfo("y", "batch", 4, 10, 10));
        g.Initializer.Add(TensorData.FromFloats("w1", [6, 8, 3, 3], w1));
        g.Initializer.Add(TensorData.FromFloats("w2", [4, 6, 1, 1], Values(24, 12)));
        g.Node.Add(Node("Conv", "conv1", ["x", "w1"], ["c1"], Ints("pads", 1, 1, 1, 1)));
        g.Node.Add(Node("Relu", "relu1", ["c1"], ["r1"]));
        g.Node.Add(Node("Conv", "conv2", ["r1", "w2"], ["y"]));
        return OnnxModelIO.ToBytes(model);
    }

    /// <summary>The same first layer twice on one input, joined by Add: x's QuantizeLinear then has two consumers.</summary>
    private static byte[] BranchingConvModel()
    {
        var w1 = Values(6 * 8 * 9, 11).Select(v => 0.6f + 0.4f * MathF.Abs(v)).ToArray();
        var w1b = Values(6 * 8 * 9, 14).Select(v => 0.6f + 0.4f * MathF.Abs(v)).ToArray();
        var model = NewModel(13);
        var g = model.Graph;
        g.Input.Add(ValueInfo("x", "batch", 8, 10, 10));
        g.Output.Add(ValueInfo("y", "batch", 4, 10, 10));
        g.Initializer.Add(TensorData.FromFloats("w1", [6, 8, 3, 3], w1));
        g.Initializer.Add(TensorData.FromFloats("w1b", [6, 8, 3, 3], w1b));
        g.Initializer.Add(TensorData.FromFloats("w2", [4, 6, 1, 1], Values(24, 12)));
        g.Node.Add(Node("Conv", "conv1", ["x", "w1"], ["c1"], Ints("pads", 1, 1, 1, 1)));
        g.Node.Add(Node("Relu", "relu1", ["c1"], ["r1"]));
        g.Node.Add(Node("Conv", "conv1b", ["x", "w1b"], ["c1b"], Ints("pads", 1, 1, 1, 1)));
        g.Node.Add(Node("Relu", "relu1b", ["c1b"], ["r1b"]));
        g.Node.Add(Node("Add", "add", ["r1", "r1b"], ["s"]));
        g.Node.Add(Node("Conv", "conv2", ["s", "w2"], ["y"]));
        return OnnxModelIO.ToBytes(model);
    }

    private static byte[] DynamicMatMulModel()
    {
        var w1 = Values(64 * 48, 1).Select(v => 0.6f + 0.4f * MathF.Abs(v)).ToArray();
        var model = NewModel(13);
        var g = model.Graph;
        g.Input.Add(ValueInfo("x", 6, 64));
        g.Output.Add(ValueInfo("y", 6, 40));
        g.Initializer.Add(TensorData.FromFloats("W1", [64, 48], w1));
        g.Initializer.Add(TensorData.FromFloats("W2", [48, 40], Values(48 * 40, 2)));
        g.Node.Add(Node("MatMul", "mm1", ["x", "W1"], ["h"]));
        g.Node.Add(Node("Relu", "relu", ["h"], ["r"]));
        g.Node.Add(Node("MatMul", "mm2", ["r", "W2"], ["y"]));
        return OnnxModelIO.ToBytes(model);
    }

    /// <summary>The model with every MatMulInteger(A, B, a_zp, b_zp) → Y replaced by
    /// Cast(MatMul(Cast(A) − Cast(a_zp), Cast(B) − Cast(b_zp)), int32): exact, since every partial sum is an integer
    /// far below 2^24.</summary>
    private static byte[] ExactMatMulIntegerReference(byte[] quantized)
    {
        var model = OnnxModelIO.Read(quantized);
        var nodes = model.Graph.Node.ToList();
        model.Graph.Node.Clear();
        int k = 0;
        foreach (var n in nodes)
        {
            if (n.OpType != "MatMulInteger")
            {
                model.Graph.Node.Add(n);
                continue;
            }
            string Centered(string value, string? zeroPoint, string tag)
            {
                string asFloat = $"ref{k}_{tag}_f";
                model.Graph.Node.Add(Node("Cast", $"ref{k}_{tag}_cast", [value], [asFloat], Int("to", (long)OnnxDataType.Float)));
                if (string.IsNullOrEmpty(zeroPoint)) return asFloat;
                string zpFloat = $"ref{k}_{tag}_zp_f", centered = $"ref{k}_{tag}_c";
                model.Graph.Node.Add(Node("Cast", $"ref{k}_{tag}_zp_cast", [zeroPoint], [zpFloat], Int("to", (long)OnnxDataType.Float)));
                model.Graph.Node.Add(Node("Sub", $"ref{k}_{tag}_sub", [asFloat, zpFloat], [centered]));
                return centered;
            }
            string a = Centered(n.Input[0], n.Input.Count > 2 ? n.Input[2] : null, "a");
            string b = Centered(n.Input[1], n.Input.Count > 3 ? n.Input[3] : null, "b");
            string product = $"ref{k}_y_f";
            model.Graph.Node.Add(Node("MatMul", $"ref{k}_matmul", [a, b], [product]));
            model.Graph.Node.Add(Node("Cast", $"ref{k}_y_cast", [product], [n.Output[0]], Int("to", (long)OnnxDataType.Int32)));
            k++;
        }
        return OnnxModelIO.ToBytes(model);
    }

    // ---------------------------------------------------------------- fused ops

    private static void OpListing(string work)
    {
        Console.WriteLine("## Ops after ONNX Runtime's optimizer (saved with OptimizedModelPath), per configuration and level");
        Console.WriteLine("Types in brackets: [activation × weight] from the zero-point / weight initializers the op reads (DequantizeLinear: its input's type).");
        Console.WriteLine();
        foreach (var (name, path, spec, calibrationSpec) in Models(work))
        {
            using var baseline = ModelRunner.Load(path);
            var specOptions = new DataSpecOptions { ModelPath = path };
            var calibration = DataSpec.Parse(calibrationSpec, baseline.Inputs, specOptions);
            Console.WriteLine($"### {name}");
            Console.WriteLine();
            Console.WriteLine("| configuration | level | quantized ops | all ops |");
            Console.WriteLine("|---|---|---|---|");
            foreach (var c in Configs)
            {
                string quantized = QuantizedPath(work, name, c, path, calibration);
                foreach (var level in new[] { GraphOptimizationLevel.ORT_ENABLE_EXTENDED, GraphOptimizationLevel.ORT_ENABLE_ALL })
                {
                    string optimized = Path.Combine(work, $"{name}-{c.Key}-{level}.onnx");
                    using (OrtSessionFactory.Create(quantized, new RuntimeOptions(GraphOptimizationLevel: level, OptimizedModelPath: optimized))) { }
                    Console.WriteLine($"| {c.Name} | {LevelName(level)} | {OpSummary(optimized, quantizedOnly: true)} | {OpSummary(optimized, quantizedOnly: false)} |");
                }
            }
            // ONNX Runtime's own opt-in on the unguarded U8S8 file.
            string unguarded = QuantizedPath(work, name, Configs[0], path, calibration);
            foreach (var level in new[] { GraphOptimizationLevel.ORT_ENABLE_EXTENDED, GraphOptimizationLevel.ORT_ENABLE_ALL })
            {
                string optimized = Path.Combine(work, $"{name}-precision-{level}.onnx");
                using (var so = OrtSessionFactory.CreateSessionOptions(new RuntimeOptions(GraphOptimizationLevel: level, OptimizedModelPath: optimized), null, out _))
                {
                    so.AddSessionConfigEntry(PrecisionModeKey, "1");
                    using (new InferenceSession(unguarded, so)) { }
                }
                Console.WriteLine($"| {Configs[0].Name} + {PrecisionModeKey}=1 | {LevelName(level)} | {OpSummary(optimized, quantizedOnly: true)} | {OpSummary(optimized, quantizedOnly: false)} |");
            }
            Console.WriteLine();
        }
    }

    private static string LevelName(GraphOptimizationLevel level) => level switch
    {
        GraphOptimizationLevel.ORT_ENABLE_EXTENDED => "EXTENDED",
        GraphOptimizationLevel.ORT_ENABLE_ALL => "ALL",
        GraphOptimizationLevel.ORT_DISABLE_ALL => "DISABLE_ALL",
        _ => level.ToString(),
    };

    private static readonly HashSet<string> QuantizedOps = new(StringComparer.Ordinal)
    {
        "QLinearConv", "QLinearMatMul", "QGemm", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "MatMulInteger", "ConvInteger",
        "DequantizeLinear", "QuantizeLinear", "DynamicQuantizeLinear", "QLinearAdd", "QLinearGlobalAveragePool", "QLinearAveragePool",
        "QLinearConcat", "QLinearMul", "QLinearLeakyRelu", "QLinearSigmoid", "QLinearSoftmax", "QLinearReduceMean", "QLinearWhere",
        "QAttention", "QEmbedLayerNormalization",
    };

    /// <summary>Which inputs hold (activation zero point, weight) per op, for the type signature.</summary>
    private static readonly Dictionary<string, (int ActivationZeroPoint, int Weight)> Signatures = new(StringComparer.Ordinal)
    {
        ["QLinearConv"] = (2, 3),
        ["QLinearMatMul"] = (2, 3),
        ["QGemm"] = (2, 3),
        ["MatMulIntegerToFloat"] = (4, 1),
        ["DynamicQuantizeMatMul"] = (-1, 1),
        ["MatMulInteger"] = (2, 1),
        ["ConvInteger"] = (2, 1),
    };

    /// <summary>Op histogram of a model file: <c>QLinearConv[u8×s8]×2, ...</c>.</summary>
    private static string OpSummary(string path, bool quantizedOnly)
    {
        var model = OnnxModelIO.Read(path);
        var types = model.Graph.Initializer.ToDictionary(t => t.Name, t => (OnnxDataType)t.DataType, StringComparer.Ordinal);
        string TypeOf(NodeProto n, int index) =>
            index < 0 ? "u8 dyn" : index < n.Input.Count && types.TryGetValue(n.Input[index], out var t) ? Short(t) : "?";
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var n in model.Graph.Node)
        {
            if (quantizedOnly && !QuantizedOps.Contains(n.OpType)) continue;
            string label = (n.Domain is "" or "ai.onnx" ? "" : n.Domain + ".") + n.OpType;
            if (Signatures.TryGetValue(n.OpType, out var s)) label += $"[{TypeOf(n, s.ActivationZeroPoint)}×{TypeOf(n, s.Weight)}]";
            else if (n.OpType == "DequantizeLinear")
                label += types.TryGetValue(n.Input[0], out var t) ? $"[const {Short(t)}]" : $"[{TypeOf(n, 2)}]";
            else if (n.OpType == "QuantizeLinear") label += $"[{TypeOf(n, 2)}]";
            counts[label] = counts.GetValueOrDefault(label) + 1;
        }
        return counts.Count == 0 ? "none" : string.Join(", ", counts.Select(kv => $"{kv.Key}×{kv.Value}"));
    }

    private static string Short(OnnxDataType t) => t switch
    {
        OnnxDataType.Int8 => "s8",
        OnnxDataType.UInt8 => "u8",
        OnnxDataType.Int32 => "s32",
        OnnxDataType.Float => "f32",
        _ => t.ToString(),
    };

    // ---------------------------------------------------------------- speed

    private static void Speed(string work, int runs)
    {
        Console.WriteLine($"## Latency, interleaved (rotating order), one shared ONNX Runtime thread pool, ORT_ENABLE_ALL, median of {runs} runs after 5 warm-up runs each");
        Console.WriteLine($"CPU: {CpuDescription()}");
        Console.WriteLine();
        foreach (var (name, path, spec, calibrationSpec) in Models(work))
        {
            using var baseline = ModelRunner.Load(path);
            var specOptions = new DataSpecOptions { ModelPath = path };
            var calibration = DataSpec.Parse(calibrationSpec, baseline.Inputs, specOptions);
            var eval = DataSpec.Parse(spec, baseline.Inputs, specOptions);
            var paths = new List<(string Name, string Path, bool PrecisionMode)> { ("fp32", path, false) };
            paths.AddRange(Configs.Select(c => (c.Name, QuantizedPath(work, name, c, path, calibration), false)));
            paths.Add(($"U8S8 guard None + {PrecisionModeKey}=1", QuantizedPath(work, name, Configs[0], path, calibration), true));
            foreach (int batchSize in name == "cnn" ? new[] { 1, 64 } : [1])
            {
                var batch = eval.Batches(batchSize, batchSize).First();
                var runners = paths.Select(p => LoadRunner(p.Path, p.PrecisionMode)).ToList();
                try
                {
                    var latencies = runners.Select(_ => new List<double>()).ToList();
                    foreach (var r in runners)
                        for (int w = 0; w < 5; w++) r.Run(batch);
                    for (int run = 0; run < runs; run++)
                        for (int k = 0; k < runners.Count; k++)
                        {
                            int i = (run + k) % runners.Count;
                            latencies[i].Add(runners[i].Run(batch).ElapsedMilliseconds);
                        }
                    var cosines = Cosines(runners, eval, name == "cnn" ? 256 : 6, batchSize == 1 && name == "cnn" ? 64 : batchSize);
                    double baseMedian = Median(latencies[0]);
                    Console.WriteLine($"### {name}, batch {batch.RowCount} ({CpuShort()})");
                    Console.WriteLine();
                    Console.WriteLine("| model | median ms | ratio vs fp32 | p10–p90 ms | output cosine vs fp32 (mean / min per row) |");
                    Console.WriteLine("|---|---:|---:|---:|---:|");
                    for (int i = 0; i < runners.Count; i++)
                    {
                        var sorted = latencies[i].Order().ToArray();
                        double median = Median(latencies[i]);
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"| {paths[i].Name} | {median:0.000} | {median / baseMedian:0.000} | {sorted[sorted.Length / 10]:0.000}–{sorted[sorted.Length * 9 / 10]:0.000} | {cosines[i].Mean:0.00000} / {cosines[i].Min:0.00000} |"));
                    }
                    Console.WriteLine();
                }
                finally
                {
                    foreach (var r in runners) r.Dispose();
                }
            }
        }
    }

    /// <summary>Per-row output cosine of every runner against the first (fp32), over <paramref name="rows"/> rows.</summary>
    private static (double Mean, double Min)[] Cosines(List<ModelRunner> runners, IDataFeed feed, int rows, int batchSize)
    {
        var all = runners.Select(_ => new List<double>()).ToArray();
        foreach (var batch in feed.Batches(batchSize, rows))
        {
            var expected = runners[0].Run(batch).Outputs[0];
            var rowsExpected = Enumerable.Range(0, expected.Rows).Select(r => expected.Row(r).ToArray()).ToArray();
            for (int i = 0; i < runners.Count; i++)
            {
                var got = runners[i].Run(batch).Outputs[0];
                for (int r = 0; r < got.Rows; r++) all[i].Add(TensorPrimitives.CosineSimilarity(rowsExpected[r], got.Row(r)));
            }
        }
        return all.Select(c => (c.Average(), c.Min())).ToArray();
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    // ---------------------------------------------------------------- models

    /// <summary>The real models: name, file, eval spec, calibration spec.</summary>
    private static IEnumerable<(string Name, string Path, string Spec, string CalibrationSpec)> Models(string work)
    {
        var cnn = BoardModels.All["cnn"](work);
        // Calibrated on the train split, timed and compared on the test split.
        yield return ("cnn", cnn.Path, cnn.DataSpec, cnn.DataSpec.Replace(":test", ":train", StringComparison.Ordinal));
        var resnet = BoardModels.All["resnet18"](work);
        // Only six photos are bundled: calibrated and compared on the same six.
        yield return ("resnet18", resnet.Path, resnet.DataSpec, resnet.DataSpec);
    }

    private static readonly Dictionary<string, string> Quantized = new(StringComparer.Ordinal);

    /// <summary>The model quantized with <paramref name="c"/> (once per process).</summary>
    private static string QuantizedPath(string work, string name, Config c, string path, IDataFeed calibration)
    {
        string key = name + "/" + c.Key;
        if (Quantized.TryGetValue(key, out var done)) return done;
        var graph = ModelGraph.Load(path);
        var options = new QdqOptions { Calibration = calibration, Guard = c.Guard, Activations = c.Activations };
        PassManager.Run(graph, QdqRecipe.Passes(graph.OnnxOpset, EveryLayer(options)));
        string output = Path.Combine(work, $"{name}-{c.Key}.onnx");
        graph.Save(output);
        Quantized[key] = output;
        return output;
    }

    /// <summary>The options with the per-layer speed check off (<c>KeepFloatWhereSlower</c>, where this build has it):
    /// every configuration then quantizes the same layers, whatever one timing says, so the configurations compare
    /// kernels and nothing else. Set by reflection so this tool builds with and without that option.</summary>
    private static QdqOptions EveryLayer(QdqOptions options)
    {
        var copy = options with { };
        var property = typeof(QdqOptions).GetProperty("KeepFloatWhereSlower");
        if (property is not null && property.PropertyType == typeof(bool) && property.CanWrite) property.SetValue(copy, false);
        return copy;
    }

    // ---------------------------------------------------------------- proto helpers

    private static ModelProto NewModel(long opset)
    {
        var model = new ModelProto { IrVersion = 8, ProducerName = "MLNetCompress.Benchmarks kernel-facts", Graph = new GraphProto { Name = "main" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        return model;
    }

    private static ValueInfoProto ValueInfo(string name, params object[] dims)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)OnnxDataType.Float, Shape = new TensorShapeProto() };
        foreach (var d in dims)
            tensor.Shape.Dim.Add(d is string p
                ? new TensorShapeProto.Types.Dimension { DimParam = p }
                : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d, CultureInfo.InvariantCulture) });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }

    private static NodeProto Node(string opType, string name, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        return node;
    }

    private static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    private static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    /// <summary>Deterministic floats in [-1, 1) from a seed (as the tests' <c>TestTensors.RandomValues</c>).</summary>
    private static float[] Values(int count, int seed)
    {
        var rng = new Random(seed);
        var v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
        return v;
    }

    // ---------------------------------------------------------------- CPU

    /// <summary>The CPU as the process sees it through CPUID (under QEMU: the emulated CPU; /proc/cpuinfo there still
    /// shows the host, so it is not used for the features).</summary>
    internal static string CpuDescription()
    {
        if (!X86Base.IsSupported) return $"not x86 ({System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture})";
        var (_, leaf7b, leaf7c, _) = X86Base.CpuId(7, 0);
        var (leaf71a, _, _, leaf71d) = X86Base.CpuId(7, 1);
        bool avx512Vnni = (leaf7c & (1 << 11)) != 0, avxVnni = (leaf71a & (1 << 4)) != 0, avxVnniInt8 = (leaf71d & (1 << 4)) != 0;
        bool avx512bw = (leaf7b & (1 << 30)) != 0;
        string host = "";
        try
        {
            host = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "";
        }
        catch (IOException)
        {
        }
        return $"{Brand()} (CPUID: AVX2 {Yes(Avx2.IsSupported)}, AVX-512F {Yes(Avx512F.IsSupported)}, AVX-512BW {Yes(avx512bw)}, " +
               $"AVX512-VNNI {Yes(avx512Vnni)}, AVX-VNNI {Yes(avxVnni)}, AVX-VNNI-INT8 {Yes(avxVnniInt8)}; " +
               $".NET: Avx2 {Yes(Avx2.IsSupported)}, Avx512F {Yes(Avx512F.IsSupported)}, AvxVnni {Yes(AvxVnni.IsSupported)}, Avx10v1 {Yes(Avx10v1.IsSupported)})" +
               (host.Length > 0 ? $"; /proc/cpuinfo (the host, even under QEMU): {host}" : "");
    }

    private static string CpuShort()
    {
        if (!X86Base.IsSupported) return "not x86";
        var (_, _, leaf7c, _) = X86Base.CpuId(7, 0);
        bool vnni = (leaf7c & (1 << 11)) != 0 || AvxVnni.IsSupported;
        return $"{Brand()}, {(Avx512F.IsSupported ? "AVX-512" : Avx2.IsSupported ? "AVX2" : "no AVX2")}, {(vnni ? "VNNI" : "no VNNI")}, {Environment.ProcessorCount} logical processors";
    }

    private static string Brand()
    {
        var (max, _, _, _) = X86Base.CpuId(unchecked((int)0x80000000), 0);
        if ((uint)max < 0x80000004) return "unknown CPU";
        var bytes = new List<byte>();
        for (uint leaf = 0x80000002; leaf <= 0x80000004; leaf++)
        {
            var (a, b, c, d) = X86Base.CpuId(unchecked((int)leaf), 0);
            foreach (int r in new[] { a, b, c, d }) bytes.AddRange(BitConverter.GetBytes(r));
        }
        return System.Text.Encoding.ASCII.GetString(bytes.ToArray()).TrimEnd('\0').Trim();
    }

    private static string Yes(bool b) => b ? "yes" : "no";

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
