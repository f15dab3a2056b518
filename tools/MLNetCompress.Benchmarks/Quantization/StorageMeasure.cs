using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using MLNetCompress.Benchmarks.Board;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.Storage;
using MLNetCompress.Runtime;

namespace MLNetCompress.Benchmarks.Quantization;

/// <summary>
/// Figures of the low-bit weight storage: the time to store ResNet18's weights against loading and saving it
/// (interleaved, one process), ResNet18's size and feature cosine on the sample photos, and the Fashion-MNIST
/// CNN sample's size and accuracy on a test split (the full 10k set where it is installed).
/// </summary>
public static class StorageMeasure
{
    private static readonly (string Label, WeightStorageOptions Options)[] CnnConfigs =
    [
        ("int8 per-channel", new() { Format = StorageFormat.Int8 }),
        ("int4 per-channel", new() { Format = StorageFormat.Int4 }),
        ("int4 blocks of 32", new() { Format = StorageFormat.Int4, BlockSize = 32 }),
        ("int4 per-channel, clipped", new() { Format = StorageFormat.Int4, Clip = true }),
        ("int2 per-channel", new() { Format = StorageFormat.Int2 }),
        ("int2 per-channel, clipped", new() { Format = StorageFormat.Int2, Clip = true }),
        ("int2 blocks of 64, clipped", new() { Format = StorageFormat.Int2, BlockSize = 64, Clip = true }),
        ("int2 blocks of 16, clipped", new() { Format = StorageFormat.Int2, BlockSize = 16, Clip = true }),
        ("binary per-channel", new() { Format = StorageFormat.Binary }),
        ("binary blocks of 64", new() { Format = StorageFormat.Binary, BlockSize = 64 }),
    ];

    private static readonly (string Label, WeightStorageOptions Options)[] ResNetConfigs =
    [
        ("int8 per-channel", new() { Format = StorageFormat.Int8 }),
        ("int4 per-channel", new() { Format = StorageFormat.Int4 }),
        ("int4 blocks of 64", new() { Format = StorageFormat.Int4, BlockSize = 64 }),
        ("int4 blocks of 32", new() { Format = StorageFormat.Int4, BlockSize = 32 }),
        ("int4 blocks of 16", new() { Format = StorageFormat.Int4, BlockSize = 16 }),
        ("int4 per-channel, clipped", new() { Format = StorageFormat.Int4, Clip = true }),
        ("int4 blocks of 32, clipped", new() { Format = StorageFormat.Int4, BlockSize = 32, Clip = true }),
    ];

    /// <summary>Entry point: <c>storage [--fashion DIR] [--runs N] [--only time|resnet|cnn]</c>.</summary>
    public static int Run(string[] args)
    {
        string fashion = Arg(args, "--fashion") ?? "/usr/share/datasets/fashion-mnist";
        int runs = int.Parse(Arg(args, "--runs") ?? "11", CultureInfo.InvariantCulture);
        string? only = Arg(args, "--only");
        var work = Path.Combine(Path.GetTempPath(), "mlnetcompress-storage-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        try
        {
            var resnet = BoardModels.All["resnet18"](work);
            if (only is null or "time") Time(resnet.Path, work, runs);
            if (only is "profile") Profile(resnet.Path, runs);
            if (only is null or "resnet") ResNet(resnet, work);
            if (only is null or "cnn") Cnn(BoardModels.All["cnn"](work).Path, Directory.Exists(fashion) ? fashion : Path.Combine(BoardModels.SamplesDir, "fashion-mnist"), work);
            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>Load+save against load+store+save of ResNet18, interleaved; the pass alone is timed inside.</summary>
    private static void Time(string model, string work, int runs)
    {
        var output = Path.Combine(work, "timed.onnx");
        foreach (var format in new[] { StorageFormat.Int8, StorageFormat.Int4, StorageFormat.Binary })
        {
            var options = new WeightStorageOptions { Format = format };
            var io = new double[runs];
            var total = new double[runs];
            var pass = new double[runs];
            ModelGraph.Load(model).Save(output); // warm-up: JIT and file cache
            StoreOnce(model, output, options);
            for (int i = 0; i < runs; i++)
            {
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
                var clock = Stopwatch.StartNew();
                ModelGraph.Load(model).Save(output);
                io[i] = clock.Elapsed.TotalMilliseconds;
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
                clock.Restart();
                pass[i] = StoreOnce(model, output, options);
                total[i] = clock.Elapsed.TotalMilliseconds;
            }
            double ioMedian = Median(io), totalMedian = Median(total), passMedian = Median(pass);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"time resnet18 {format.Name()} per-channel: load+save {ioMedian:0.0} ms; load+store+save {totalMedian:0.0} ms ({totalMedian / ioMedian:0.00}x); " +
                $"the pass alone {passMedian:0.0} ms ({passMedian / ioMedian:0.00}x of load+save); medians of {runs} interleaved runs"));
        }
    }

    /// <summary>Where the pass's time goes on ResNet18: decoding the weights, planning (quantizing), and the whole pass with its invariant check.</summary>
    private static void Profile(string model, int runs)
    {
        var decode = new double[runs];
        var plan = new double[runs];
        var run = new double[runs];
        var options = new WeightStorageOptions { Format = StorageFormat.Int4 };
        for (int i = 0; i < runs; i++)
        {
            var graph = ModelGraph.Load(model);
            var clock = Stopwatch.StartNew();
            foreach (var t in graph.Main.Initializers) TensorData.ToFloatArray(t);
            decode[i] = clock.Elapsed.TotalMilliseconds;
            clock.Restart();
            new WeightStoragePass(options).Preview(graph);
            plan[i] = clock.Elapsed.TotalMilliseconds;
            clock.Restart();
            PassManager.Run(graph, [new WeightStoragePass(options)]);
            run[i] = clock.Elapsed.TotalMilliseconds;
        }
        var tensors = ModelGraph.Load(model).Main.Initializers.ToList();
        Console.WriteLine($"profile resnet18: {tensors.Count(t => t.RawData.IsEmpty)} of {tensors.Count} initializers in typed fields");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"profile resnet18 int4: decode all weights {Median(decode):0.0} ms; plan (decode + quantize) {Median(plan):0.0} ms; whole pass with invariants {Median(run):0.0} ms"));
    }

    private static double StoreOnce(string model, string output, WeightStorageOptions options)
    {
        var graph = ModelGraph.Load(model);
        var clock = Stopwatch.StartNew();
        PassManager.Run(graph, [new WeightStoragePass(options)]);
        double ms = clock.Elapsed.TotalMilliseconds;
        graph.Save(output);
        return ms;
    }

    private static void ResNet(BoardModel resnet, string work)
    {
        using var baseline = ModelRunner.Load(resnet.Path);
        var photos = DataSpec.Parse(resnet.DataSpec, baseline.Inputs, new DataSpecOptions { ModelPath = resnet.Path });
        var batches = photos.Batches(1).ToList();
        var expected = batches.Select(b => baseline.Run(b).Outputs[0].Data.ToArray()).ToList();
        long before = new FileInfo(resnet.Path).Length;
        Console.WriteLine($"resnet18 fp32: {before:N0} bytes");
        foreach (var (label, options) in ResNetConfigs)
        {
            string path = Store(resnet.Path, options, work, label);
            using var runner = ModelRunner.Load(path);
            var cosines = batches.Select((b, k) => (double)TensorPrimitives.CosineSimilarity(expected[k], runner.Run(b).Outputs[0].Data)).ToList();
            long after = new FileInfo(path).Length;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"resnet18 {label}: {after:N0} bytes ({(double)before / after:0.00}x smaller); feature cosine on {cosines.Count} photos min {cosines.Min():0.0000}, mean {cosines.Average():0.0000}"));
        }
    }

    private static void Cnn(string model, string fashion, string work)
    {
        long before = new FileInfo(model).Length;
        var (accuracy, rows) = Accuracy(model, fashion);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cnn fp32: {before:N0} bytes; accuracy {accuracy:P2} on {rows} images of {fashion}"));
        foreach (var (label, options) in CnnConfigs)
        {
            string path = Store(model, options, work, label);
            long after = new FileInfo(path).Length;
            var (a, _) = Accuracy(path, fashion);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"cnn {label}: {after:N0} bytes ({(double)before / after:0.00}x smaller); accuracy {a:P2} ({(a - accuracy) * 100:+0.00;-0.00} points)"));
        }
    }

    private static string Store(string model, WeightStorageOptions options, string work, string label)
    {
        var graph = ModelGraph.Load(model);
        PassManager.Run(graph, [new WeightStoragePass(options)]);
        string path = Path.Combine(work, $"{Path.GetFileNameWithoutExtension(model)}.{label.Replace(' ', '-').Replace(",", "", StringComparison.Ordinal)}.onnx");
        graph.Save(path);
        return path;
    }

    private static (double Accuracy, long Rows) Accuracy(string model, string fashion)
    {
        using var runner = ModelRunner.Load(model);
        var feed = new FashionMnistFeed(fashion, runner.Inputs);
        long correct = 0, rows = 0;
        foreach (var batch in feed.Batches(500))
        {
            var logits = runner.Run(batch).Outputs[0].Data;
            int classes = logits.Length / batch.RowCount;
            for (int r = 0; r < batch.RowCount; r++)
                if (TensorPrimitives.IndexOfMax(logits.Slice(r * classes, classes)) == batch.Labels![r]) correct++;
            rows += batch.RowCount;
        }
        return ((double)correct / rows, rows);
    }

    private static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    private static string? Arg(string[] args, string name)
    {
        int at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
    }
}
