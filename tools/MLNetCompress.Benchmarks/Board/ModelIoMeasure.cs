using System.Diagnostics;
using System.Globalization;
using MLNetCompress.Onnx;

namespace MLNetCompress.Benchmarks.Board;

/// <summary>
/// Load + save of one model, timed over repeated runs in a fresh process: median milliseconds and the
/// process's peak working set (what a user of <c>mlnet-compress</c> pays to open and write a model).
/// </summary>
public static class ModelIoMeasure
{
    /// <summary>Entry point: <c>io MODEL [--runs N]</c> (MODEL may be a board model name such as resnet18).</summary>
    public static int Run(string[] args)
    {
        if (args.Length == 0)
        {
            Console.Error.WriteLine("usage: io MODEL|resnet18|minilm|mlp|cnn [--runs N]");
            return 2;
        }
        int runs = args.Length >= 3 && args[1] == "--runs" ? int.Parse(args[2], CultureInfo.InvariantCulture) : 15;
        var work = Path.Combine(Path.GetTempPath(), "mlnetcompress-io-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        try
        {
            string path = BoardModels.All.TryGetValue(args[0], out var factory) ? factory(work).Path : args[0];
            long baseline = Process.GetCurrentProcess().WorkingSet64;
            var times = new double[runs];
            var output = Path.Combine(work, "copy.onnx");
            ModelGraph.Load(path).Save(output); // warm-up: JIT and file cache
            for (int i = 0; i < runs; i++)
            {
                // Collect the previous run's garbage so the peak is one load+save's, not fifteen's.
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
                var clock = Stopwatch.StartNew();
                ModelGraph.Load(path).Save(output);
                times[i] = clock.Elapsed.TotalMilliseconds;
            }
            Array.Sort(times);
            var process = Process.GetCurrentProcess();
            process.Refresh();
            long size = new FileInfo(path).Length;
            Console.WriteLine($"model {Path.GetFileName(path)} ({size:N0} bytes): load+save median {times[runs / 2]:0.0} ms over {runs} runs " +
                $"(min {times[0]:0.0}, max {times[^1]:0.0}); peak working set {process.PeakWorkingSet64 / 1048576.0:0} MiB " +
                $"(process at start {baseline / 1048576.0:0} MiB; {process.PeakWorkingSet64 / (double)size:0.0}x the file)");
            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }
}
