using MLNetCompress.Onnx.Proto;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

/// <summary><c>--sparse-format auto|coo|bitmask</c> on prune and cluster.</summary>
public class SparseFormatOptionTests
{
    private static string Probes => $"fashion-mnist:{RealModels.FashionMnistSubset}:test";

    [Fact]
    public async Task PruneThenCluster_WithBitmask_IsSmallerThanWithCoo_AndHoldsNoSparseInitializer()
    {
        var dir = RealModels.TempDir("sparse-format-cli");
        var pruned = Path.Combine(dir, "mlp.p90.onnx");
        var run = await CliRunner.Run("prune", RealModels.MlpSample, "-o", pruned, "--sparsity", "0.9", "--global",
            "--calibration", Probes, "--min-cosine", "0.5", "-q");
        Assert.True(run.ExitCode == 0, run.Err);

        var sizes = new Dictionary<string, long>();
        foreach (var format in new[] { "coo", "bitmask", "auto" })
        {
            var clustered = Path.Combine(dir, $"mlp.p90.k16.{format}.onnx");
            run = await CliRunner.Run("cluster", pruned, "-o", clustered, "--clusters", "16", "--sparse-format", format,
                "--calibration", Probes, "--min-cosine", "0.9", "-q");
            Assert.True(run.ExitCode == 0, run.Err);
            sizes[format] = new FileInfo(clustered).Length;
            var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(clustered)).Graph;
            if (format == "bitmask")
            {
                Assert.Empty(graph.SparseInitializer);
                Assert.Contains(graph.Node, n => n.OpType == "CumSum");
                Assert.Contains("bitmask:", run.Out, StringComparison.Ordinal);
            }
        }
        Assert.True(sizes["bitmask"] < sizes["coo"], $"bitmask {sizes["bitmask"]} vs coo {sizes["coo"]} bytes");
        Assert.True(sizes["auto"] <= sizes["bitmask"], $"auto {sizes["auto"]} vs bitmask {sizes["bitmask"]} bytes");
    }

    [Theory]
    [InlineData("prune", "--sparsity", "0.5", "--sparse-format", "zip")]   // not a format: a parse error
    [InlineData("cluster", "--clusters", "16", "--sparse-format", "zip")]
    public async Task UnknownFormat_FailsAsAParseError_AndWritesNothing(string command, params string[] options)
    {
        var output = Path.Combine(RealModels.TempDir("sparse-format-bad"), command + ".onnx");
        var run = await CliRunner.Run([command, RealModels.MlpSample, "-o", output, .. options]);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("zip", run.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task Structured_WithASparseFormat_IsBadInput()
    {
        var output = Path.Combine(RealModels.TempDir("sparse-format-structured"), "out.onnx");
        var run = await CliRunner.Run("prune", RealModels.CnnSample, "-o", output, "--structured", "--channels", "0.25", "--sparse-format", "bitmask");
        run.AssertCleanFailure(1);
        Assert.Contains("--sparse-format", run.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
    }
}
