using Microsoft.ML.OnnxRuntime;

namespace MLNetCompress.Runtime;

/// <summary>Creates ONNX Runtime sessions from <see cref="RuntimeOptions"/>. Every session of the process should
/// come from here: the process-wide thread pool can only be set up before anything else starts ONNX Runtime.</summary>
public static class OrtSessionFactory
{
    private const string ExternalDataFolderKey = "session.model_external_initializers_file_folder_path";
    private static readonly Lock Gate = new();
    private static bool? s_globalPool;
    private static int s_globalThreads;

    /// <summary>True once the process-wide thread pool exists (sessions from here then share it).</summary>
    public static bool GlobalThreadPoolActive
    {
        get { lock (Gate) return s_globalPool == true; }
    }

    /// <summary>Starts ONNX Runtime with one process-wide intra-op pool of <paramref name="intraOpThreads"/>
    /// threads (0: ONNX Runtime's default), unless it is running already. Returns whether the global pool is
    /// in use; false when ONNX Runtime was started elsewhere without one (sessions then use their own threads).</summary>
    public static bool EnsureGlobalThreadPool(int intraOpThreads = 0, Action<string>? log = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(intraOpThreads);
        lock (Gate)
        {
            if (s_globalPool is bool known)
            {
                if (known && intraOpThreads != 0 && intraOpThreads != s_globalThreads)
                    log?.Invoke($"ONNX Runtime's global thread pool already has {(s_globalThreads == 0 ? "the default number of" : s_globalThreads.ToString(System.Globalization.CultureInfo.InvariantCulture))} threads; {intraOpThreads} asked for now is ignored");
                return known;
            }
            if (OrtEnv.IsCreated)
            {
                log?.Invoke("ONNX Runtime was started elsewhere in this process without a global thread pool; each session uses its own threads");
                s_globalPool = false;
                return false;
            }
            using var threading = new OrtThreadingOptions
            {
                GlobalIntraOpNumThreads = intraOpThreads,
                // One inter-op thread: sessions run their graphs sequentially, parallelism is intra-op.
                GlobalInterOpNumThreads = 1,
            };
            var env = new EnvironmentCreationOptions
            {
                logId = "MLNetCompress",
                logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
                threadOptions = threading,
            };
            try
            {
                OrtEnv.CreateInstanceWithOptions(ref env);
                s_globalPool = true;
                s_globalThreads = intraOpThreads;
            }
            catch (OnnxRuntimeException e)
            {
                log?.Invoke($"ONNX Runtime's global thread pool could not be set up ({OrtRuntimeException.OneLine(e)}); each session uses its own threads");
                s_globalPool = false;
            }
            return s_globalPool.Value;
        }
    }

    /// <summary>The CUDA device to hand to code that creates its own sessions (ML.NET's <c>ApplyOnnxModel</c>, whose
    /// CPU fallback does not catch the CPU runtime package's missing CUDA entry point): the requested device when
    /// the CUDA provider can be added, else null (running on the CPU, with a note) when the fallback is allowed.</summary>
    /// <exception cref="OrtRuntimeException">CUDA was asked for, cannot be added, and <see cref="RuntimeOptions.FallbackToCpu"/> is false.</exception>
    public static int? UsableGpuDevice(RuntimeOptions options, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.GpuDeviceId is null) return null;
        using var so = CreateSessionOptions(options, log, out bool usingGpu);
        return usingGpu ? options.GpuDeviceId : null;
    }

    /// <summary>Session options for <paramref name="options"/>; the caller disposes them after creating the session.</summary>
    /// <param name="options">What to set up.</param>
    /// <param name="log">Receives one-line notes (CUDA fallback, thread pool).</param>
    /// <param name="usingGpu">True when the CUDA provider was added.</param>
    /// <exception cref="OrtRuntimeException">CUDA was asked for, cannot be added, and <see cref="RuntimeOptions.FallbackToCpu"/> is false.</exception>
    public static SessionOptions CreateSessionOptions(RuntimeOptions options, Action<string>? log, out bool usingGpu)
    {
        ArgumentNullException.ThrowIfNull(options);
        usingGpu = false;
        var so = Build(options, log);
        if (options.GpuDeviceId is not int device) return so;
        try
        {
            so.AppendExecutionProvider_CUDA(device);
            usingGpu = true;
            return so;
        }
        catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
        {
            so.Dispose();
            var why = OrtRuntimeException.OneLine(e);
            if (!options.FallbackToCpu)
                throw new OrtRuntimeException($"CUDA device {device} is not available to ONNX Runtime ({why}); build with -p:UseGpu=true on a machine with CUDA, or allow the CPU fallback", e);
            log?.Invoke($"CUDA device {device} is not available ({why}); running on the CPU");
            // Rebuilt from scratch: a failed provider append must not leave half-set state behind.
            return Build(options, log);
        }
    }

    /// <summary>Loads a model given as bytes.</summary>
    /// <param name="model">The serialized ModelProto.</param>
    /// <param name="options">Runtime options, or null for <see cref="RuntimeOptions.Default"/>.</param>
    /// <param name="log">Receives one-line notes.</param>
    /// <exception cref="OrtRuntimeException">The model does not load (one-line message), or CUDA is refused.</exception>
    public static InferenceSession Create(byte[] model, RuntimeOptions? options = null, Action<string>? log = null) =>
        Create(model, options, log, out _);

    /// <summary>Loads a model file (its external data is found beside it).</summary>
    /// <param name="path">The .onnx file.</param>
    /// <param name="options">Runtime options, or null for <see cref="RuntimeOptions.Default"/>.</param>
    /// <param name="log">Receives one-line notes.</param>
    /// <exception cref="OrtRuntimeException">The model does not load (one-line message), or CUDA is refused.</exception>
    public static InferenceSession Create(string path, RuntimeOptions? options = null, Action<string>? log = null) =>
        Create(path, options, log, out _);

    /// <summary>Loads a model given as bytes and tells whether it runs on the GPU.</summary>
    public static InferenceSession Create(byte[] model, RuntimeOptions? options, Action<string>? log, out bool usingGpu)
    {
        ArgumentNullException.ThrowIfNull(model);
        return CreateSession(so => new InferenceSession(model, so), options, log, out usingGpu,
            e => $"the model ({model.Length} bytes) does not load in ONNX Runtime: {OrtRuntimeException.OneLine(e)}");
    }

    /// <summary>Loads a model file and tells whether it runs on the GPU.</summary>
    public static InferenceSession Create(string path, RuntimeOptions? options, Action<string>? log, out bool usingGpu)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"model file {path} does not exist", path);
        return CreateSession(so => new InferenceSession(path, so), options, log, out usingGpu,
            e => $"model {path} does not load in ONNX Runtime: {OrtRuntimeException.OneLine(e)}");
    }

    private static InferenceSession CreateSession(Func<SessionOptions, InferenceSession> create, RuntimeOptions? options, Action<string>? log,
        out bool usingGpu, Func<OnnxRuntimeException, string> failure)
    {
        options ??= RuntimeOptions.Default;
        for (int attempt = 0; ; attempt++)
        {
            using var so = CreateSessionOptions(options, log, out usingGpu);
            try
            {
                return create(so);
            }
            catch (OnnxRuntimeException e) when (attempt == 0 && e.Message.Contains("EnvCreatedWithGlobalThreadPools", StringComparison.Ordinal))
            {
                // Another component of the process (ML.NET's OnnxTransformer, on another thread) started ONNX Runtime
                // without a global pool between our check and our setup: sessions use their own threads from now on.
                lock (Gate) s_globalPool = false;
                log?.Invoke("ONNX Runtime was started elsewhere in this process without a global thread pool; each session uses its own threads");
            }
            catch (OnnxRuntimeException e)
            {
                throw new OrtRuntimeException(failure(e), e);
            }
        }
    }

    private static SessionOptions Build(RuntimeOptions options, Action<string>? log)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(options.IntraOpThreads);
        var so = new SessionOptions();
        try
        {
            so.GraphOptimizationLevel = options.GraphOptimizationLevel;
            if (options.OptimizedModelPath is { } optimized) so.OptimizedModelFilePath = optimized;
            if (options.ExternalDataFolder is { } folder) so.AddSessionConfigEntry(ExternalDataFolderKey, folder);
            if (options.UseGlobalThreadPool && EnsureGlobalThreadPool(options.IntraOpThreads, log))
                so.DisablePerSessionThreads();
            else if (options.IntraOpThreads > 0)
                so.IntraOpNumThreads = options.IntraOpThreads;
            return so;
        }
        catch
        {
            so.Dispose();
            throw;
        }
    }
}
