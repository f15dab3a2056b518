using System.Diagnostics;
using System.Globalization;
using MLNetCompress.Data;
using MLNetCompress.ML.Distillation;
using MLNetCompress.Runtime;

namespace MLNetCompress.Benchmarks.Distillation;

/// <summary>
/// Soft-label generation throughput against plain ONNX Runtime inference of the same teacher, in one process,
/// interleaved round by round: <c>soft-labels [--data SPEC] [--rounds R] [--batch-size B] [--model FILE]
/// [--format parquet,idv,csv] [--no-features]</c>. Plain inference reads the same feed and runs the teacher, nothing
/// more; generation also computes softmax(z / T) and writes the file (features included unless --no-features).
/// The figure is the ratio of the medians of rows per second.
/// </summary>
public static class SoftLabelThroughput
{
    /// <summary>Entry point.</summary>
    public static int Run(string[] args)
    {
        string? model = null, spec = null;
        int rounds = 5, batch = 64;
        var features = true;
        string[] formats = ["parquet", "idv", "csv"];
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--data": spec = args[++i]; break;
                case "--model": model = args[++i]; break;
                case "--rounds": rounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--batch-size": batch = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--format": formats = args[++i].Split(','); break;
                case "--no-features": features = false; break;
                default:
                    Console.Error.WriteLine("usage: soft-labels [--data SPEC] [--model FILE] [--rounds R] [--batch-size B] [--format parquet,idv,csv] [--no-features]");
                    return 2;
            }
        }
        var samples = FindSamples();
        model ??= Path.Combine(samples, "fashion_mnist_cnn.onnx");
        // The full Fashion-MNIST test set when the Debian package is there, else the bundled 1,000 rows.
        spec ??= Directory.Exists("/usr/share/datasets/fashion-mnist")
            ? "fashion-mnist:/usr/share/datasets/fashion-mnist:test"
            : $"fashion-mnist:{Path.Combine(samples, "fashion-mnist")}:test";

        OrtSessionFactory.EnsureGlobalThreadPool();
        using var runner = ModelRunner.Load(model, outputNames: ["logits"]);
        var feed = DataSpec.Parse(spec, runner.Inputs);
        var rows = feed.Count ?? 0;
        var work = Path.Combine(Path.GetTempPath(), "mlnetcompress-softlabels-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        var options = new SoftLabelOptions { Teachers = [model], Temperature = 2.0, BatchSize = batch, IncludeFeatures = features };
        try
        {
            double Plain()
            {
                var clock = Stopwatch.StartNew();
                long n = 0;
                foreach (var b in feed.Batches(batch))
                {
                    runner.Run(b);
                    n += b.RowCount;
                }
                return n / clock.Elapsed.TotalSeconds;
            }
            (double Phase, double Whole) Generate(string format)
            {
                var path = Path.Combine(work, "labels." + format);
                SoftLabelFile.Delete(path);
                var clock = Stopwatch.StartNew();
                var result = SoftLabelGenerator.Generate(feed, path, options);
                var whole = result.Info.Rows / clock.Elapsed.TotalSeconds;
                SoftLabelFile.Delete(path);
                return (result.RowsPerSecond, whole);
            }

            // Warm-up: JIT, file cache, ONNX Runtime's first runs.
            Plain();
            foreach (var f in formats) Generate(f);
            var plain = new List<double>();
            var phase = formats.ToDictionary(f => f, _ => new List<double>());
            var whole = formats.ToDictionary(f => f, _ => new List<double>());
            for (var r = 0; r < rounds; r++)
            {
                plain.Add(Plain());
                foreach (var f in formats)
                {
                    var (p, w) = Generate(f);
                    phase[f].Add(p);
                    whole[f].Add(w);
                }
            }
            var basis = Median(plain);
            Console.WriteLine($"teacher {Path.GetFileName(model)}, data {feed.Description}, batch {batch}, T = 2, features {(features ? "on" : "off")}, {rounds} interleaved rounds (medians)");
            Console.WriteLine($"| run | rows/s | vs plain ORT |");
            Console.WriteLine($"| --- | ---: | ---: |");
            Console.WriteLine($"| plain ONNX Runtime inference | {basis:N0} | 1.00x |");
            foreach (var f in formats)
            {
                Console.WriteLine($"| soft labels -> .{f} (labelling + writing) | {Median(phase[f]):N0} | {Median(phase[f]) / basis:0.00}x |");
                Console.WriteLine($"| soft labels -> .{f} (whole call, with model load) | {Median(whole[f]):N0} | {Median(whole[f]) / basis:0.00}x |");
            }
            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string FindSamples()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "onnx-samples");
                if (File.Exists(Path.Combine(candidate, "fashion_mnist_cnn.onnx"))) return candidate;
            }
        throw new DirectoryNotFoundException("onnx-samples/ not found above the current folder; run from the repository");
    }
}
