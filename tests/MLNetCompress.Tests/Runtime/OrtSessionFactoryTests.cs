using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Microsoft.ML.OnnxRuntime;

namespace MLNetCompress.Tests.Runtime;

public class OrtSessionFactoryTests
{
    private static bool CudaBuilt => OrtEnv.Instance().GetAvailableProviders().Contains("CUDAExecutionProvider");

    [Fact]
    public void TheGlobalPool_StartedBeforeAnySession_IsActive()
    {
        // OrtTestSetup starts it as the test assembly loads.
        Assert.True(OrtSessionFactory.GlobalThreadPoolActive);
        var notes = new List<string>();
        Assert.True(OrtSessionFactory.EnsureGlobalThreadPool(3, notes.Add));
        Assert.Contains("global thread pool already has the default number of threads", Assert.Single(notes));
    }

    [Fact]
    public void SessionsOnTheGlobalPool_RunSideBySide()
    {
        using var a = MLNetCompress.Runtime.ModelRunner.Load(TestModels.Mlp().ToBytes());
        using var b = MLNetCompress.Runtime.ModelRunner.Load(TestModels.Mlp(seed: 2).ToBytes(), new RuntimeOptions(IntraOpThreads: 1, UseGlobalThreadPool: false));
        var x = new MLNetCompress.Data.NamedTensor(new float[8], [2, 4]);
        Assert.Equal(2, a.Run(new Dictionary<string, MLNetCompress.Data.NamedTensor> { ["x"] = x })["y"].Rows);
        Assert.Equal(2, b.Run(new Dictionary<string, MLNetCompress.Data.NamedTensor> { ["x"] = x })["y"].Rows);
    }

    [Fact]
    public void Cuda_WithoutCudaNatives_FallsBackToCpuWithANote()
    {
        if (CudaBuilt) return; // a -p:UseGpu=true build on a CUDA machine: nothing to fall back from
        var notes = new List<string>();
        using var session = OrtSessionFactory.Create(TestModels.Mlp().ToBytes(), new RuntimeOptions(GpuDeviceId: 0), notes.Add, out var gpu);
        Assert.False(gpu);
        var note = Assert.Single(notes, n => n.StartsWith("CUDA device 0 is not available"));
        Assert.EndsWith("running on the CPU", note);
        Assert.Single(session.InputMetadata);
    }

    [Fact]
    public void Cuda_WithoutFallback_Throws()
    {
        if (CudaBuilt) return;
        var e = Assert.Throws<OrtRuntimeException>(() => OrtSessionFactory.Create(TestModels.Mlp().ToBytes(), new RuntimeOptions(GpuDeviceId: 0, FallbackToCpu: false)));
        Assert.StartsWith("CUDA device 0 is not available to ONNX Runtime", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void MissingFile_IsFileNotFound()
    {
        Assert.Throws<FileNotFoundException>(() => OrtSessionFactory.Create("/nonexistent/model.onnx"));
    }
}
