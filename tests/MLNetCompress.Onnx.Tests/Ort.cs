using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Onnx.Tests;

/// <summary>One output of an ONNX Runtime run, copied out of native memory.</summary>
internal sealed record OrtOutput(string Name, TensorElementType Type, long[] Shape, byte[] Bytes)
{
    public float[] Floats => Type == TensorElementType.Float
        ? MemoryMarshal.Cast<byte, float>(Bytes).ToArray()
        : throw new InvalidOperationException($"output '{Name}' is {Type}, not float");

    public long[] Int64s => Type == TensorElementType.Int64
        ? MemoryMarshal.Cast<byte, long>(Bytes).ToArray()
        : throw new InvalidOperationException($"output '{Name}' is {Type}, not int64");
}

/// <summary>Runs models in ONNX Runtime (the independent reference) with one thread, so runs are bit-reproducible.</summary>
internal static class Ort
{
    private static SessionOptions Options(bool optimize = true)
    {
        var o = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        if (!optimize) o.GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL;
        return o;
    }

    /// <summary>A session over model bytes; without optimization each node runs as written (no fusion).</summary>
    public static InferenceSession Session(byte[] model, bool optimize = true)
    {
        using var o = Options(optimize);
        return new InferenceSession(model, o);
    }

    /// <summary>A session over a model file (external data is found beside it).</summary>
    public static InferenceSession Session(string path)
    {
        using var o = Options();
        return new InferenceSession(path, o);
    }

    /// <summary>Runs a session on named inputs and returns every output.</summary>
    public static OrtOutput[] Run(InferenceSession session, params (string Name, OrtValue Value)[] inputs)
    {
        using var runOptions = new RunOptions();
        var outputNames = session.OutputNames;
        using var results = session.Run(runOptions, inputs.Select(i => i.Name).ToArray(), inputs.Select(i => i.Value).ToArray(), outputNames);
        var outputs = new OrtOutput[results.Count];
        int k = 0;
        foreach (var v in results)
        {
            var info = v.GetTensorTypeAndShape();
            outputs[k] = new OrtOutput(outputNames[k], info.ElementDataType, info.Shape, v.GetTensorMutableRawData().ToArray());
            k++;
        }
        return outputs;
    }

    /// <summary>Loads model bytes and runs them.</summary>
    public static OrtOutput[] Run(byte[] model, params (string Name, OrtValue Value)[] inputs)
    {
        using var s = Session(model);
        return Run(s, inputs);
    }

    /// <summary>Loads model bytes and runs every node as written (no graph optimization).</summary>
    public static OrtOutput[] RunUnoptimized(byte[] model, params (string Name, OrtValue Value)[] inputs)
    {
        using var s = Session(model, optimize: false);
        return Run(s, inputs);
    }

    /// <summary>Loads a model file and runs it.</summary>
    public static OrtOutput[] Run(string path, params (string Name, OrtValue Value)[] inputs)
    {
        using var s = Session(path);
        return Run(s, inputs);
    }

    /// <summary>A float input tensor.</summary>
    public static OrtValue Floats(float[] data, params long[] shape) => OrtValue.CreateTensorValueFromMemory(data, shape);

    /// <summary>A bool input tensor.</summary>
    public static OrtValue Bools(bool[] data, params long[] shape) => OrtValue.CreateTensorValueFromMemory(data, shape);

    /// <summary>An int64 input tensor.</summary>
    public static OrtValue Int64s(long[] data, params long[] shape) => OrtValue.CreateTensorValueFromMemory(data, shape);
}
