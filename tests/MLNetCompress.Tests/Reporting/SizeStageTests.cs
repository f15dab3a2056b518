using System.Text.Json;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Packing;
using MLNetCompress.Recipes;
using MLNetCompress.Reporting;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.Reporting;

/// <summary>The report's size-after-each-stage table against sizes measured another way: files written by shorter recipes, the packed file.</summary>
public class SizeStageTests
{
    private const string Steps = """{"step":"prepare"},{"step":"prune","sparsity":0.6},{"step":"cluster","clusters":16}""";

    private static CompressionResult RunCnn(string steps, string name)
    {
        var recipe = Recipe.Parse($$"""{"name":"{{name}}","steps":[{{steps}}]}""");
        var output = Path.Combine(RealModels.TempDir("stages-" + name), name + ".onnx");
        var probes = new FashionMnistFeed(RealModels.FashionMnistSubset, ModelRunner.Load(RealModels.CnnSample).Inputs, FashionMnistSplit.Train);
        return RecipeRunner.Run(RealModels.CnnSample, recipe, new RecipeRunOptions { OutputPath = output, Calibration = probes, MinCosine = 0.5 });
    }

    [Fact]
    public void EachStepsBytes_AreTheSizeOfTheModelThatRecipeUpToThatStepWrites_AndPackIsTheFileSize()
    {
        var full = RunCnn(Steps, "full");
        Assert.Equal(["original", "step 1: prepare", "step 2: prune", "step 3: cluster"], full.Stages.Select(s => s.Name));
        long original = new FileInfo(RealModels.CnnSample).Length;
        Assert.Equal(original, full.Stages[0].Bytes);
        Assert.Equal(new FileInfo(full.OutputPath).Length, full.Stages[^1].Bytes);

        // Independently: the same recipe cut after step 1 and after step 2 writes files of exactly those sizes.
        var steps = Steps.Split("},{");
        for (int n = 1; n < steps.Length; n++)
        {
            var prefix = RunCnn(string.Join("},{", steps.Take(n)) + "}", $"prefix{n}");
            Assert.Equal(new FileInfo(prefix.OutputPath).Length, full.Stages[n].Bytes);
        }
        Assert.All(full.Stages, s => Assert.Equal((double)original / s.Bytes, s.Ratio, 12));
        Assert.Contains("fold-batchnorm", full.Stages[1].Detail);
        Assert.True(full.Stages[3].Bytes * 3 < full.Stages[2].Bytes, "clustering to 16 centroids shrinks the weights");

        var mlcz = Path.Combine(Path.GetDirectoryName(full.OutputPath)!, "full.mlcz");
        var packed = ModelPacker.PackFile(full.OutputPath, mlcz, new PackOptions { Quality = 5 });
        var result = full with { Stages = SizeStage.WithPack(full.Stages, full.BytesBefore, packed.PackedBytes, mlcz) };
        Assert.Equal(new FileInfo(mlcz).Length, result.Stages[^1].Bytes);
        Assert.Equal(SizeStage.PackName, result.Stages[^1].Name);

        var report = CompressionReport.Build(result);
        Assert.Equal(result.Stages, report.Stages);
        var json = ReportWriter.ToJson(report);
        using (var doc = JsonDocument.Parse(json))
        {
            var rows = doc.RootElement.GetProperty("stages").EnumerateArray().ToList();
            Assert.Equal(5, rows.Count);
            Assert.Equal("pack (.mlcz)", rows[^1].GetProperty("stage").GetString());
            Assert.Equal(new FileInfo(mlcz).Length, rows[^1].GetProperty("bytes").GetInt64());
            Assert.Equal((double)original / new FileInfo(mlcz).Length, rows[^1].GetProperty("ratio").GetDouble(), 12);
        }
        Assert.Equal(report.Stages, ReportWriter.FromJson(json).Stages);

        var md = ReportWriter.ToMarkdown(report);
        Assert.Contains("## Size after each stage", md);
        foreach (var s in result.Stages)
            Assert.Contains($"| {MarkdownReport.Cell(s.Name)} | {s.Bytes} | ", md);
        var html = ReportWriter.ToHtml(report);
        Assert.Contains("id=\"stage-table\"", html);
        Assert.Contains("id=\"plot-stages\"", html);
    }

    [Fact]
    public void AStepMergedIntoTheNext_SharesItsRow()
    {
        // x[.,64] · W1[64,128] → Relu → · W2[128,32]: small enough for the re-fit to take no time.
        var model = TestModels.Model().Input("x", OnnxDataType.Float, "batch", 64)
            .Initializer(TestTensors.Random("W1", [64, 128], 1)).Initializer(TestTensors.Random("W2", [128, 32], 2))
            .Node("MatMul", ["x", "W1"], ["h"]).Node("Relu", ["h"], ["r"]).Node("MatMul", ["r", "W2"], ["y"])
            .Output("y", OnnxDataType.Float, "batch", 32).ToBytes();
        var recipe = Recipe.Parse("""{"steps":[{"step":"prune","sparsity":0.5},{"step":"reconstruct"}]}""");
        var output = Path.Combine(RealModels.TempDir("stages-merged"), "merged.onnx");
        var data = new RandomFeed(ModelRunner.Load(model).Inputs, rows: 64);
        var result = RecipeRunner.Run(model, recipe, new RecipeRunOptions { OutputPath = output, Calibration = data, MinCosine = 0.5 });
        Assert.Equal(["original", "steps 1-2: prune + reconstruct"], result.Stages.Select(s => s.Name));
        Assert.Equal("pruning-reconstruction", result.Stages[1].Detail);
        Assert.Equal(model.LongLength, result.Stages[0].Bytes);
        Assert.Equal(new FileInfo(output).Length, result.Stages[1].Bytes);
    }

    [Fact]
    public void WithoutARecipe_TheTableIsTheOriginalAndTheWrittenFile()
    {
        var output = Path.Combine(RealModels.TempDir("stages-demo"), "cnn.int8.onnx");
        var result = ModelCompressor.Compress(RealModels.CnnSample, ModelCompressor.DemoPasses(),
            new CompressionOptions { OutputPath = output, Verification = new VerifyOptions { MinCosine = 0.9 } });
        Assert.Empty(result.Stages);
        var report = CompressionReport.Build(result);
        Assert.Equal([SizeStage.OriginalName, SizeStage.WrittenName], report.Stages.Select(s => s.Name));
        Assert.Equal([new FileInfo(RealModels.CnnSample).Length, new FileInfo(output).Length], report.Stages.Select(s => s.Bytes));
        Assert.Equal(report.CompressionRatio, report.Stages[1].Ratio, 12);
    }
}
