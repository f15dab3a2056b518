using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.LowRank;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Runtime;

namespace MLNetCompress.Benchmarks.Board;

/// <summary>
/// Low-rank recipes for the benchmark board (issue 5). Add them to <see cref="BenchmarkBoard.Recipes"/> with
/// <c>foreach (var (name, recipe) in LowRankCases.Recipes) recipes[name] = recipe;</c>, and the cases in
/// <see cref="Cases"/> to the board's default case list. Data-aware recipes calibrate on data disjoint from what
/// the board evaluates on: the Fashion-MNIST train split (the board uses test) and, for ResNet18, a folder of
/// photos given by the <c>MLNETCOMPRESS_RESNET_CALIBRATION</c> environment variable (an images: data spec),
/// by default the skimage photos of Debian's python3-skimage other than the six the board evaluates on.
/// </summary>
public static class LowRankCases
{
    /// <summary>The recipes by name.</summary>
    public static IReadOnlyDictionary<string, Func<IReadOnlyList<IGraphPass>>> Recipes { get; } =
        new Dictionary<string, Func<IReadOnlyList<IGraphPass>>>
        {
            // CNN sample: fully connected layers only, at most half their parameters.
            ["lowrank-fc-half"] = () => [new LowRankPass(new LowRankOptions { TargetParams = 0.5, Ops = new HashSet<string> { "Gemm" } })],
            ["lowrank-fc-half-aware"] = () => [new LowRankPass(new LowRankOptions
            {
                TargetParams = 0.5,
                Ops = new HashSet<string> { "Gemm" },
                Calibration = FashionMnistTrain(),
            })],
            // ResNet18: channel split of the 3×3 convs, data-aware.
            ["lowrank-conv-aware"] = () => [new LowRankPass(new LowRankOptions
            {
                TargetParams = 0.35,
                Ops = new HashSet<string> { "Conv" },
                Calibration = ResNetCalibration(),
                CalibrationSettings = new CalibrationOptions { MaxRows = 64, BatchSize = 8 },
                LayersPerStage = 4,
            })],
            // MiniLM: the parameters-versus-cosine table at three energies.
            ["lowrank-e80"] = () => [new LowRankPass(new LowRankOptions { Energy = 0.80 })],
            ["lowrank-e90"] = () => [new LowRankPass(new LowRankOptions { Energy = 0.90 })],
            ["lowrank-e95"] = () => [new LowRankPass(new LowRankOptions { Energy = 0.95 })],
        };

    /// <summary>The issue's benchmark cases.</summary>
    public static IReadOnlyList<string> Cases { get; } =
    [
        "cnn/lowrank-fc-half", "cnn/lowrank-fc-half-aware", "resnet18/lowrank-conv-aware",
        "minilm/lowrank-e80", "minilm/lowrank-e90", "minilm/lowrank-e95",
    ];

    private static IDataFeed FashionMnistTrain()
    {
        var model = BoardModels.All["cnn"]("");
        using var runner = ModelRunner.Load(model.Path);
        return DataSpec.Parse($"fashion-mnist:{Path.Combine(BoardModels.SamplesDir, "fashion-mnist")}:train", runner.Inputs);
    }

    private static IDataFeed ResNetCalibration()
    {
        var model = BoardModels.All["resnet18"]("");
        string spec = Environment.GetEnvironmentVariable("MLNETCOMPRESS_RESNET_CALIBRATION")
            ?? $"images:{DisjointPhotos()}?preset=resnet18-mlnet";
        using var runner = ModelRunner.Load(model.Path);
        return DataSpec.Parse(spec, runner.Inputs, new DataSpecOptions { ModelPath = model.Path });
    }

    /// <summary>
    /// The skimage photos minus those the board evaluates ResNet18 on (onnx-samples/images holds copies of six of
    /// them), copied into a temp folder: calibration and evaluation data stay disjoint.
    /// </summary>
    private static string DisjointPhotos()
    {
        const string skimage = "/usr/lib/python3/dist-packages/skimage/data";
        if (!Directory.Exists(skimage))
            throw new ArgumentException($"no ResNet18 calibration photos: install python3-skimage ({skimage}) or set MLNETCOMPRESS_RESNET_CALIBRATION to an images: data spec.");
        var heldOut = Directory.EnumerateFiles(Path.Combine(BoardModels.SamplesDir, "images"))
            .Select(f => Path.GetFileNameWithoutExtension(f)).ToHashSet(StringComparer.OrdinalIgnoreCase);
        string folder = Path.Combine(Path.GetTempPath(), "mlnetcompress-resnet-calibration");
        Directory.CreateDirectory(folder);
        foreach (var file in Directory.EnumerateFiles(skimage))
        {
            string ext = Path.GetExtension(file).ToLowerInvariant();
            // truncated.jpg is deliberately broken; the held-out photos are left out by name.
            if (ext is not (".png" or ".jpg") || heldOut.Contains(Path.GetFileNameWithoutExtension(file)) || Path.GetFileName(file) == "truncated.jpg") continue;
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)), overwrite: true);
        }
        return folder;
    }
}
