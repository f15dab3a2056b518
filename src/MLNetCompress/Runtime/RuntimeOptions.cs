using Microsoft.ML.OnnxRuntime;

namespace MLNetCompress.Runtime;

/// <summary>How ONNX Runtime sessions are created: threads, device, graph optimisation.</summary>
/// <param name="IntraOpThreads">Intra-op threads; 0 lets ONNX Runtime choose (one per physical core).
/// With <paramref name="UseGlobalThreadPool"/> this sizes the process-wide pool the first time it is created.</param>
/// <param name="GpuDeviceId">CUDA device to run on, or null for the CPU.</param>
/// <param name="FallbackToCpu">When the CUDA provider cannot be added: run on the CPU (true) or throw (false).</param>
/// <param name="GraphOptimizationLevel">ONNX Runtime's graph optimisation level.</param>
/// <param name="OptimizedModelPath">Where ONNX Runtime writes the model after its optimisations, or null.</param>
/// <param name="UseGlobalThreadPool">Run every session on one process-wide thread pool, so that sessions timed
/// side by side compete for the same threads (per-session pools make interleaved timings noisy).</param>
/// <param name="ExternalDataFolder">Folder of the external-data files of a model given as bytes, or null.</param>
public sealed record RuntimeOptions(
    int IntraOpThreads = 0,
    int? GpuDeviceId = null,
    bool FallbackToCpu = true,
    GraphOptimizationLevel GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
    string? OptimizedModelPath = null,
    bool UseGlobalThreadPool = true,
    string? ExternalDataFolder = null)
{
    /// <summary>Defaults: CPU, all optimisations, the global thread pool.</summary>
    public static RuntimeOptions Default { get; } = new();
}
