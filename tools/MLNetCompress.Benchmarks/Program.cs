using BenchmarkDotNet.Running;
using MLNetCompress.Benchmarks.Board;

// Two entry points:
//   board [--case NAME ...] [--out DIR] [--n N]   the benchmark board: model x recipe x data cases,
//                                                 a Markdown and a JSON table (see Board/README.md)
//   io MODEL [--runs N]                           load+save median time and peak memory of one model
//   micro [BenchmarkDotNet arguments]             BenchmarkDotNet micro-benchmarks of the kernels
if (args.Length > 0 && args[0] == "micro")
{
    // In-process: BenchmarkDotNet's generated out-of-process project picks up this repository's
    // Directory.Build.props and ran the kernels about 1000x slower than a Release build (seen here).
    var benchmarkArgs = args[1..].Contains("--inProcess") ? args[1..] : [.. args[1..], "--inProcess"];
    BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(benchmarkArgs);
    return 0;
}
if (args.Length > 0 && args[0] == "board")
    return BenchmarkBoard.Run(args[1..]);
if (args.Length > 0 && args[0] == "students") return MLNetCompress.Benchmarks.Distillation.StudentBoard.Run(args[1..]);
if (args.Length > 0 && args[0] == "io")
    return ModelIoMeasure.Run(args[1..]);
if (args.Length > 0 && args[0] == "soft-labels") return MLNetCompress.Benchmarks.Distillation.SoftLabelThroughput.Run(args[1..]);
if (args.Length > 0 && args[0] == "storage") return MLNetCompress.Benchmarks.Quantization.StorageMeasure.Run(args[1..]);
if (args.Length > 0 && args[0] == "structured")
    return MLNetCompress.Benchmarks.Pruning.StructuredMeasure.Run(args[1..]);
if (args.Length > 0 && args[0] == "kmeans") return MLNetCompress.Benchmarks.Clustering.KMeansMeasure.Run(args[1..]);
if (args.Length > 0 && args[0] == "int8-guards") return MLNetCompress.Benchmarks.Quantization.Int8GuardMeasure.Run(args[1..]);
if (args.Length > 0 && args[0] == "kernel-facts") return MLNetCompress.Benchmarks.Quantization.KernelFacts.Run(args[1..]);
if (args.Length > 0 && args[0] == "nbits")
    return MLNetCompress.Benchmarks.Quantization.NBitsMeasure.Run(args[1..]);

Console.Error.WriteLine("usage: MLNetCompress.Benchmarks board [--case MODEL/RECIPE ...] [--out DIR] [--n N] [--threads T] | io MODEL [--runs N] | micro [BenchmarkDotNet args]");
return 2;
