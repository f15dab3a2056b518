using BenchmarkDotNet.Attributes;
using MLNetCompress.Benchmarks.Board;
using MLNetCompress.Onnx;

namespace MLNetCompress.Benchmarks.Micro;

/// <summary>Reading and writing ResNet18 (60 MiB, 110 initializers): the fixed cost of every command.</summary>
[MemoryDiagnoser]
public class ModelIoBenchmarks
{
    private string model = "", output = "", work = "";
    private byte[] bytes = [];

    [GlobalSetup]
    public void Setup()
    {
        work = Path.Combine(Path.GetTempPath(), "mlnetcompress-bench-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        model = BoardModels.All["resnet18"](work).Path;
        output = Path.Combine(work, "copy.onnx");
        bytes = File.ReadAllBytes(model);
    }

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(work, recursive: true);

    [Benchmark] public ModelGraph Load() => ModelGraph.Load(model);
    [Benchmark] public void LoadAndSave() => ModelGraph.Load(model).Save(output);
    [Benchmark] public byte[] ParseAndSerializeInMemory() => ModelGraph.FromBytes(bytes).ToBytes();
}
