using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Runtime;
using Microsoft.ML.OnnxRuntime;

namespace MLNetCompress.Cli;

/// <summary>Checks and finds model files before an engine call, so a wrong path gets a message that names the option.</summary>
internal static class ModelFiles
{
    /// <summary>Throws a one-line <see cref="InputException"/> unless <paramref name="path"/> is an existing file.</summary>
    public static void Require(string path, string what)
    {
        if (Directory.Exists(path))
            throw new InputException($"{what} '{path}' is a folder, not a model file; pass the .onnx file inside it");
        if (!File.Exists(path))
            throw new InputException($"{what} '{path}' does not exist; check the path");
    }

    /// <summary>
    /// The bundled <c>onnx-samples</c> folder: searched upward from the current directory, then from the
    /// executable's folder (a `dotnet run` from the repository and an installed tool both find it); null if absent.
    /// </summary>
    public static string? FindSamples(string requiredFile)
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "onnx-samples");
                if (File.Exists(Path.Combine(candidate, requiredFile))) return candidate;
            }
        }
        return null;
    }

    /// <summary>
    /// A model's inputs as ONNX Runtime sees them (data feeds are shaped to these), from a session with no graph
    /// optimisation, which is quick to create. The same runtime options as the real run keep the global thread
    /// pool sized as asked (the first session creates it).
    /// </summary>
    public static IReadOnlyList<ModelInputInfo> Inputs(string path, RuntimeOptions runtime) =>
        ExplainLoadFailure(path, () =>
        {
            using var session = OrtSessionFactory.Create(path, runtime with { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL });
            return ModelInputInfo.FromSession(session);
        });

    /// <summary>
    /// Runs <paramref name="load"/>; when ONNX Runtime refuses a model, our own reader is asked why, since it says
    /// in plain words what is wrong with a file that is not ONNX ("truncated or not an .onnx file"); when it
    /// finds nothing wrong, ONNX Runtime's error stands.
    /// </summary>
    public static T ExplainLoadFailure<T>(string path, Func<T> load, params string[] alsoCheck)
    {
        try
        {
            return load();
        }
        catch (OrtRuntimeException)
        {
            foreach (var p in alsoCheck.Prepend(path)) ModelGraph.Load(p);
            throw;
        }
    }
}
