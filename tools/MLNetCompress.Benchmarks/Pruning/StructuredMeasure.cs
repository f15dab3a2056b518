using System.Diagnostics;
using System.Globalization;
using MLNetCompress.Benchmarks.Board;
using MLNetCompress.Calibration;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Pruning.Structured;
using MLNetCompress.Runtime;

namespace MLNetCompress.Benchmarks.Pruning;

/// <summary>
/// Figures of structured pruning, one process, every comparison interleaved (<see cref="ModelComparer"/>):
/// ResNet18 at 30% of channels (latency ratio and feature cosine on held-out photos, calibrated on others) and the
/// Fashion-MNIST CNN at 30%/50% (accuracy on the full 10k test set when it is installed, else the bundled 1k).
/// </summary>
public static class StructuredMeasure
{
    /// <summary>Photos for ResNet18: calibration and held-out sets, no image in both (skimage's data where installed).</summary>
    private static readonly string[] CalibrationPhotos = ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "camera.png", "coins.png", "grass.png", "ihc.png"];

    private static readonly string[] HeldOutPhotos = ["rocket.jpg", "retina.jpg", "hubble_deep_field.jpg", "moon.png", "motorcycle_left.png", "gravel.png", "brick.png"];

    private const string SkimageData = "/usr/lib/python3/dist-packages/skimage/data";

    private const string FullFashionMnist = "/usr/share/datasets/fashion-mnist";

    /// <summary>Entry point: <c>structured [resnet18] [cnn] [--n SAMPLES]</c> (both models by default).</summary>
    public static int Run(string[] args)
    {
        var which = args.Where((a, i) => !a.StartsWith("--", StringComparison.Ordinal) && (i == 0 || args[i - 1] != "--n")).ToHashSet(StringComparer.Ordinal);
        int n = args.SkipWhile(a => a != "--n").Skip(1).Select(a => int.Parse(a, CultureInfo.InvariantCulture)).FirstOrDefault(60);
        var work = Path.Combine(Path.GetTempPath(), "mlnetcompress-structured-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        try
        {
            if (which.Count == 0 || which.Contains("resnet18")) ResNet18(work, n);
            if (which.Count == 0 || which.Contains("cnn")) Cnn(work);
            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static void ResNet18(string work, int samples)
    {
        var model = BoardModels.All["resnet18"](work).Path;
        var calibrationDir = PhotoFolder(work, "calibration", CalibrationPhotos);
        var heldOutDir = PhotoFolder(work, "held-out", HeldOutPhotos);
        var inputs = ModelFiles(model);
        var read = new DataSpecOptions { ModelPath = model };
        var calibration = DataSpec.Parse($"images:{calibrationDir}?preset=resnet18-mlnet", inputs, read);
        var heldOut = DataSpec.Parse($"images:{heldOutDir}?preset=resnet18-mlnet", inputs, read);
        Console.WriteLine($"ResNet18 — calibration: {calibration.Description}; held out: {heldOut.Description}");
        Console.WriteLine("| recipe | params | latency ratio (speed-up) | feature cosine mean / min (held out) | pass time |");
        Console.WriteLine("|---|---|---|---|---|");
        var settings = new CalibrationOptions { MaxRows = 64, BatchSize = 4, MaxVectorsPerRow = 512 };
        foreach (var (name, options) in new (string, StructuredPruningOptions)[]
        {
            ("30% L1", new() { Fraction = 0.3, RoundTo = 8 }),
            ("30% activation + reconstruct", new() { Fraction = 0.3, RoundTo = 8, Criterion = ChannelCriterion.Activation, Reconstruct = true, Calibration = calibration, CalibrationSettings = settings }),
            ("30% OBS (reconstruction criterion) + reconstruct", new() { Fraction = 0.3, RoundTo = 8, Criterion = ChannelCriterion.Reconstruction, Reconstruct = true, Calibration = calibration, CalibrationSettings = settings }),
            ("30% OBS + reconstruct, damping 0.1", new() { Fraction = 0.3, RoundTo = 8, Damping = 0.1, Criterion = ChannelCriterion.Reconstruction, Reconstruct = true, Calibration = calibration, CalibrationSettings = settings }),
            ("20% OBS + reconstruct", new() { Fraction = 0.2, RoundTo = 8, Criterion = ChannelCriterion.Reconstruction, Reconstruct = true, Calibration = calibration, CalibrationSettings = settings }),
            ("30% OBS + reconstruct, no residual groups", new() { Fraction = 0.3, RoundTo = 8, ResidualGroups = false, Criterion = ChannelCriterion.Reconstruction, Reconstruct = true, Calibration = calibration, CalibrationSettings = settings }),
        })
            Measure(model, name, options, heldOut, work, batchSize: 1, samples, calibration);
    }

    private static void Cnn(string work)
    {
        var model = BoardModels.All["cnn"](work).Path;
        var inputs = ModelFiles(model);
        string testSpec = Directory.Exists(FullFashionMnist) ? $"fashion-mnist:{FullFashionMnist}:test" : $"fashion-mnist:{Path.Combine(BoardModels.SamplesDir, "fashion-mnist")}:test";
        var test = DataSpec.Parse(testSpec, inputs);
        var calibration = DataSpec.Parse($"fashion-mnist:{Path.Combine(BoardModels.SamplesDir, "fashion-mnist")}:train", inputs);
        Console.WriteLine();
        Console.WriteLine($"Fashion-MNIST CNN — calibration: {calibration.Description}; test: {test.Description}");
        Console.WriteLine("| recipe | params | latency ratio (speed-up) | logits cosine mean / min | accuracy before -> after |");
        Console.WriteLine("|---|---|---|---|---|");
        var settings = new CalibrationOptions { MaxRows = 1000, BatchSize = 100, MaxVectorsPerRow = 64 };
        foreach (double fraction in new[] { 0.3, 0.5 })
            foreach (var (name, options) in new (string, StructuredPruningOptions)[]
            {
                ("L1", new() { Fraction = fraction, RoundTo = 8 }),
                ("L1 + reconstruct", new() { Fraction = fraction, RoundTo = 8, Reconstruct = true, Calibration = calibration, CalibrationSettings = settings }),
                ("activation + reconstruct", new() { Fraction = fraction, RoundTo = 8, Criterion = ChannelCriterion.Activation, Reconstruct = true, Calibration = calibration, CalibrationSettings = settings }),
                ("OBS + reconstruct", new() { Fraction = fraction, RoundTo = 8, Criterion = ChannelCriterion.Reconstruction, Reconstruct = true, Calibration = calibration, CalibrationSettings = settings }),
            })
                Measure(model, $"{fraction:0%} {name}", options, test, work, batchSize: 100, samples: 20);
    }

    private static void Measure(string model, string name, StructuredPruningOptions options, IDataFeed evalFeed, string work, int batchSize, int samples,
        IDataFeed? fitFeed = null)
    {
        string output = Path.Combine(work, "pruned.onnx");
        var clock = Stopwatch.StartNew();
        var result = ModelCompressor.Compress(model, [new StructuredPruningPass(options)], new CompressionOptions
        {
            OutputPath = output,
            Verification = new VerifyOptions { MinCosine = -1 }, // figures, not a gate: the comparison below reports fidelity
        });
        var passTime = clock.Elapsed;
        var report = ModelComparer.Compare(model, output, evalFeed, new EvalOptions { BatchSize = batchSize, MinLatencySamples = samples, WarmupRuns = 3 });
        var o = report.Outputs[0];
        string accuracy = o.BaselineAccuracy is double a && o.CandidateAccuracy is double b ? $"{a:0.00%} -> {b:0.00%}" : "";
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {Parameters(model) / 1e6:0.000}M -> {Parameters(output) / 1e6:0.000}M | {report.LatencyRatio:0.000} ({1 / report.LatencyRatio:0.00}x, {report.LatencySamples} interleaved runs) | {o.MeanCosine:0.0000} / {o.MinCosine:0.0000} | {(accuracy.Length > 0 ? accuracy : $"{passTime.TotalSeconds:0.0} s")} |"));
        if (fitFeed is not null)
        {
            // How well the fit holds where it was made, beside the held-out figure: the gap is the calibration set's size.
            var fit = ModelComparer.Compare(model, output, fitFeed, new EvalOptions { BatchSize = batchSize, MinLatencySamples = 1, WarmupRuns = 0 });
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  (cosine on the calibration photos: {fit.Outputs[0].MeanCosine:0.0000})"));
        }
        foreach (var line in result.Passes.SelectMany(p => p.Skipped).Take(3)) Console.WriteLine($"  skipped: {line}");
    }

    private static long Parameters(string path) =>
        ModelGraph.Load(path).Constants.Where(c => c.DataType == OnnxDataType.Float).Sum(c => c.ElementCount);

    private static IReadOnlyList<ModelInputInfo> ModelFiles(string model)
    {
        using var runner = ModelRunner.Load(model);
        return runner.Inputs;
    }

    /// <summary>A folder of links to the photos found (bundled samples first, then skimage's data).</summary>
    private static string PhotoFolder(string work, string name, string[] photos)
    {
        var dir = Path.Combine(work, name);
        Directory.CreateDirectory(dir);
        foreach (var photo in photos)
        {
            var source = new[] { Path.Combine(BoardModels.SamplesDir, "images", photo), Path.Combine(SkimageData, photo) }.FirstOrDefault(File.Exists);
            if (source is not null) File.Copy(source, Path.Combine(dir, photo));
        }
        return dir;
    }
}
