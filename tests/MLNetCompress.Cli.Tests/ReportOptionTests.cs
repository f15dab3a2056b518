using System.Text.Json;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

public class ReportOptionTests
{
    private static string Probes => $"fashion-mnist:{RealModels.FashionMnistSubset}:test";

    private static JsonElement ReadReport(string dir)
    {
        foreach (var file in new[] { "report.json", "report.md", "report.html" })
            Assert.True(File.Exists(Path.Combine(dir, file)), $"{file} was not written");
        Assert.Equal(3, Directory.GetFiles(dir).Length); // no temporary files left behind
        return JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "report.json"))).RootElement;
    }

    /// <summary>Share of exact zeros of an initializer, counted here from the file's raw float bytes.</summary>
    private static double Zeros(string model, string name)
    {
        var t = ModelProto.Parser.ParseFrom(File.ReadAllBytes(model)).Graph.Initializer.Single(i => i.Name == name);
        var raw = t.RawData.ToByteArray();
        int zeros = 0;
        for (int i = 0; i < raw.Length; i += 4) if (BitConverter.ToSingle(raw, i) == 0) zeros++;
        return zeros / (raw.Length / 4.0);
    }

    [Fact]
    public async Task TheCnn_PrunedThenClustered_WithReport_WritesJsonMarkdownAndHtml_WithFiguresFromTheFiles()
    {
        var dir = RealModels.TempDir("report-cli");
        var pruned = Path.Combine(dir, "cnn.p50.onnx");
        var clustered = Path.Combine(dir, "cnn.p50.k16.onnx");
        var run = await CliRunner.Run("prune", RealModels.CnnSample, "-o", pruned, "--sparsity", "0.5", "--calibration", Probes,
            "--min-cosine", "0.95", "--report", Path.Combine(dir, "prune"), "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        run = await CliRunner.Run("cluster", pruned, "-o", clustered, "--clusters", "16", "--calibration", Probes,
            "--min-cosine", "0.95", "--report", Path.Combine(dir, "cluster"), "-q");
        Assert.True(run.ExitCode == 0, run.Err);

        var prune = ReadReport(Path.Combine(dir, "prune"));
        Assert.Equal(new FileInfo(RealModels.CnnSample).Length, prune.GetProperty("bytesBefore").GetInt64());
        Assert.Equal(new FileInfo(pruned).Length, prune.GetProperty("bytesAfter").GetInt64());
        var cluster = ReadReport(Path.Combine(dir, "cluster"));
        Assert.Equal(new FileInfo(pruned).Length, cluster.GetProperty("bytesBefore").GetInt64());
        Assert.Equal(new FileInfo(clustered).Length, cluster.GetProperty("bytesAfter").GetInt64());

        var prunedLayers = prune.GetProperty("layers").EnumerateArray().ToList();
        Assert.NotEmpty(prunedLayers);
        foreach (var layer in prunedLayers)
        {
            string name = layer.GetProperty("weight").GetString()!;
            Assert.Equal(Zeros(pruned, name), layer.GetProperty("sparsityAfter").GetDouble(), 12);
            long count = layer.GetProperty("params").GetInt64();
            Assert.Equal(count, layer.GetProperty("histogram").GetProperty("before").EnumerateArray().Sum(c => c.GetInt64()));
            Assert.Equal(count, layer.GetProperty("histogram").GetProperty("after").EnumerateArray().Sum(c => c.GetInt64()));
        }
        foreach (var layer in cluster.GetProperty("layers").EnumerateArray())
        {
            string name = layer.GetProperty("weight").GetString()!;
            Assert.Equal(16, layer.GetProperty("clusters").GetInt32());
            Assert.Equal(4, layer.GetProperty("bits").GetInt32());
            // Clustering keeps the pruned zeros exactly zero.
            Assert.Equal(Zeros(pruned, name), layer.GetProperty("sparsityBefore").GetDouble(), 12);
            Assert.True(layer.GetProperty("sparsityAfter").GetDouble() >= layer.GetProperty("sparsityBefore").GetDouble());
        }

        // The eval table ran on the labelled probe data.
        var output = cluster.GetProperty("evaluation").GetProperty("outputs")[0];
        Assert.Equal("logits", output.GetProperty("name").GetString());
        Assert.True(output.GetProperty("accuracyBefore").GetDouble() > 0.8);
        Assert.True(output.GetProperty("accuracyAfter").GetDouble() > 0.8);
        Assert.True(cluster.GetProperty("evaluation").GetProperty("latencyRatio").GetDouble() > 0);
        var html = File.ReadAllText(Path.Combine(dir, "cluster", "report.html"));
        Assert.Contains("id=\"plot-clusters\"", html);
        Assert.Contains("| classifier.1.weight | Gemm |", File.ReadAllText(Path.Combine(dir, "cluster", "report.md")));
    }

    [Theory]
    [InlineData("prune", "--sparsity", "0.5")]
    [InlineData("cluster", "--clusters", "16")]
    [InlineData("lowrank", "--rank-ratio", "0.5")]
    public async Task Report_ThatIsAFile_FailsCleanly_AndWritesNothing(string command, string option, string value)
    {
        var dir = RealModels.TempDir("report-cli-bad");
        var file = Path.Combine(dir, "taken.txt");
        File.WriteAllText(file, "not a folder");
        var output = Path.Combine(dir, "out.onnx");
        var run = await CliRunner.Run(command, RealModels.MlpSample, "-o", output, option, value, "--report", file);
        run.AssertCleanFailure(1);
        Assert.Contains("--report", run.Err);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task EveryCompressingCommand_TakesReport()
    {
        foreach (var command in new[] { "prune", "cluster", "lowrank", "quantize", "demo" })
        {
            var run = await CliRunner.Run(command, "--help");
            Assert.True(run.ExitCode == 0, run.Err);
            Assert.Contains("--report", run.Out);
        }
    }
}
