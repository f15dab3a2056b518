using MLNetCompress.Inspection;
using MLNetCompress.Onnx;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

public class InspectCommandTests
{
    [Fact]
    public async Task ResNet18_Json_StatesTheModelsRealFacts()
    {
        var run = await CliRunner.Run("inspect", RealModels.ResNet18, "--json");
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.Equal("", run.Err);
        var r = InspectionReport.FromJson(run.Out);

        Assert.Equal(3, r.IrVersion);
        Assert.Equal(new OpsetEntry("ai.onnx", 8), Assert.Single(r.Opsets));
        var input = Assert.Single(r.Inputs); // IR 3: initializers listed as inputs are not real inputs
        Assert.Equal(["1", "3", "224", "224"], input.Shape);
        Assert.Equal(new FileInfo(RealModels.ResNet18).Length, r.SizeOnDisk);

        int convNodes = r.Operators.Single(o => o.Op == "Conv").Count;
        Assert.Equal(convNodes, r.Layers.Count(l => l.Op == "Conv"));
        Assert.All(r.Layers, l => Assert.Equal("float", l.StorageType));

        // Independently: every constant's elements, straight from the graph.
        var graph = ModelGraph.Load(RealModels.ResNet18);
        Assert.Equal(graph.Constants.Sum(c => c.ElementCount), r.Parameters.Total);
        Assert.Equal(graph.Constants.Sum(c => c.ByteCount), r.Parameters.Bytes);
        Assert.Equal(graph.Constants.Count(), r.WeightLocations.Initializers.Tensors + r.WeightLocations.ConstantNodes.Tensors);
        // Each layer's weight is the constant its Conv reads as input 1.
        var convWeights = graph.Main.Nodes.Where(n => n.OpType == "Conv").Select(n => n.Input[1]).ToHashSet();
        Assert.All(r.Layers, l => Assert.Contains(l.Weight, convWeights));
    }

    [Fact]
    public async Task ResNet18_Tables_ArePlainTextWhenRedirected()
    {
        var run = await CliRunner.Run("inspect", RealModels.ResNet18);
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("IR version    3", run.Out);
        Assert.Contains("ai.onnx 8", run.Out);
        Assert.Contains("Layers with constant weights", run.Out);
        Assert.Matches(@"\n  Conv +22\n", run.Out);
        Assert.False(run.Out.Contains('\u001b'), "ANSI escapes in redirected output");
        Assert.False(run.Out.Contains('─'), "box drawing in redirected output");
    }

    [Fact]
    public async Task MiniLm_ListsTheMatMulsWithConstantWeights()
    {
        var run = await CliRunner.Run("inspect", RealModels.MiniLm, "--json");
        Assert.True(run.ExitCode == 0, run.Err);
        var r = InspectionReport.FromJson(run.Out);
        Assert.Equal(13, r.Opsets.Single(o => o.Domain == "ai.onnx").Version);
        Assert.Equal(["input_ids", "attention_mask", "token_type_ids"], r.Inputs.Select(i => i.Name));
        Assert.Equal(["batch", "sequence"], r.Inputs[0].Shape);
        Assert.Equal(48, r.Operators.Single(o => o.Op == "MatMul").Count);

        // Independently: MatMuls whose second input is an initializer (the rest multiply two activations).
        var graph = ModelGraph.Load(RealModels.MiniLm);
        var weighted = graph.Main.Nodes.Where(n => n.OpType == "MatMul" && graph.Main.Initializer(n.Input[1]) is not null).ToList();
        Assert.Equal(36, weighted.Count);
        var matMulLayers = r.Layers.Where(l => l.Op == "MatMul").ToList();
        Assert.Equal(weighted.Select(n => n.Name), matMulLayers.Select(l => l.Node));
        Assert.Equal(weighted.Select(n => n.Input[1]), matMulLayers.Select(l => l.Weight));
        Assert.Contains(r.Notes, n => n.StartsWith("12 MatMul nodes", StringComparison.Ordinal));
        Assert.Equal(graph.Constants.Sum(c => c.ElementCount), r.Parameters.Total);
    }

    public static TheoryData<string> BadModels => ["missing", "empty", "random", "truncated", "directory", "text"];

    [Theory]
    [MemberData(nameof(BadModels))]
    public async Task BadModel_ExitsOne_WithOneErrorLine(string kind)
    {
        var dir = RealModels.TempDir("bad-" + kind);
        var path = Path.Combine(dir, kind + ".onnx");
        switch (kind)
        {
            case "empty": File.WriteAllBytes(path, []); break;
            case "random": File.WriteAllBytes(path, RandomBytes(4096, 7)); break;
            case "truncated":
                var bytes = File.ReadAllBytes(RealModels.MlpSample);
                File.WriteAllBytes(path, bytes[..(bytes.Length * 2 / 3)]);
                break;
            case "directory": Directory.CreateDirectory(path); break;
            case "text": File.WriteAllText(path, "this is not a model\n"); break;
        }
        var before = Directory.GetFileSystemEntries(dir).Length;
        var run = await CliRunner.Run("inspect", path);
        run.AssertCleanFailure(1);
        Assert.Contains(kind + ".onnx", run.Err); // the message names the file
        Assert.Equal(before, Directory.GetFileSystemEntries(dir).Length);
    }

    [Fact]
    public async Task Verbose_AddsTheStackTrace()
    {
        var path = Path.Combine(RealModels.TempDir("verbose"), "empty.onnx");
        File.WriteAllBytes(path, []);
        var run = await CliRunner.Run("inspect", path, "--verbose");
        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith("error: ", run.ErrLines[0]);
        Assert.Contains("OnnxFormatException", run.Err);
        Assert.Contains(" at ", run.Err);
    }

    private static byte[] RandomBytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }
}
