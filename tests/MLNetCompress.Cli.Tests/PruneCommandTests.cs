using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

public class PruneCommandTests
{
    private static string Probes => $"fashion-mnist:{RealModels.FashionMnistSubset}:test";

    [Fact]
    public async Task Prune_HalfOfTheMlp_WithSparseStorage_WritesAVerifiedSmallerModel()
    {
        var dir = RealModels.TempDir("prune-cli");
        var output = Path.Combine(dir, "mlp.pruned.onnx");
        var run = await CliRunner.Run("prune", RealModels.MlpSample, "-o", output, "--sparsity", "0.5", "--sparse-storage",
            "--calibration", Probes, "--min-cosine", "0.95", "--report", dir, "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.Contains("net.0.weight", run.Out);
        Assert.Contains("50.0% zeros", run.Out);

        // At 50% zeros a value plus its int32 index (8 bytes) per non-zero is no smaller than 4 dense bytes per value:
        // sparse storage leaves the weight dense, and the written model holds exactly half zeros.
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(output));
        var w = proto.Graph.Initializer.Single(t => t.Name == "net.0.weight");
        var values = TensorData.ToFloatArray(w);
        Assert.Equal(Math.Round(0.5 * values.Length), values.Count(v => v == 0));
        Assert.True(File.Exists(Path.Combine(dir, "report.json")));
    }

    [Fact]
    public async Task Prune_90PercentGlobal_StoresSparsely_AndTheFileShrinks()
    {
        var dir = RealModels.TempDir("prune-cli-global");
        var output = Path.Combine(dir, "mlp.p90.onnx");
        var run = await CliRunner.Run("prune", RealModels.MlpSample, "-o", output, "--sparsity", "0.9", "--global", "--sparse-storage",
            "--calibration", Probes, "--min-cosine", "0.5", "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.True(new FileInfo(output).Length * 3 < new FileInfo(RealModels.MlpSample).Length);
        Assert.NotEmpty(ModelProto.Parser.ParseFrom(File.ReadAllBytes(output)).Graph.SparseInitializer);
    }

    [Theory]
    [InlineData(1, "--global")]                       // --global without --sparsity: bad input
    [InlineData(1, "--sparsity", "0.5", "--std-rate", "1")]
    [InlineData(1, "--pattern", "4:2")]
    [InlineData(2, "--sparsity", "1.5")]              // out of range: a parse error
    [InlineData(1, "--sparsity", "0.5", "--allocation", "random")]
    [InlineData(1, "--allocation", "sensitivity")]    // no --sparsity to share out
    [InlineData(1, "--sparsity", "0.5", "--global", "--allocation", "uniform")]
    public async Task Prune_BadOptions_FailCleanly_AndWriteNothing(int exitCode, params string[] options)
    {
        var output = Path.Combine(RealModels.TempDir("prune-cli-bad"), "out.onnx");
        var run = await CliRunner.Run(["prune", RealModels.MlpSample, "-o", output, .. options]);
        if (exitCode == 1) run.AssertCleanFailure(1);
        else Assert.Equal(2, run.ExitCode);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task Prune_WithReconstruction_KeepsTheMlpCloserToTheOriginalThanMagnitudeAlone()
    {
        var dir = RealModels.TempDir("prune-cli-reconstruct");
        var magnitude = Path.Combine(dir, "mlp.p75.onnx");
        var rebuilt = Path.Combine(dir, "mlp.p75.rec.onnx");
        var train = $"fashion-mnist:{RealModels.FashionMnistSubset}:train";
        Assert.Equal(0, (await CliRunner.Run("prune", RealModels.MlpSample, "-o", magnitude, "--sparsity", "0.75",
            "--calibration", train, "--min-cosine", "-1", "-q")).ExitCode);
        var run = await CliRunner.Run("prune", RealModels.MlpSample, "-o", rebuilt, "--sparsity", "0.75", "--reconstruct",
            "--calibration", train, "--min-cosine", "-1", "-q");
        Assert.True(run.ExitCode == 0, run.Err);

        // Same sparsity, but the kept weights were re-fitted: the logits on held-out rows are closer to the original's.
        var test = $"fashion-mnist:{RealModels.FashionMnistSubset}:test";
        var a = await CliRunner.Run("eval", "-a", RealModels.MlpSample, "-b", magnitude, "-d", test, "--json", "-q");
        var b = await CliRunner.Run("eval", "-a", RealModels.MlpSample, "-b", rebuilt, "-d", test, "--json", "-q");
        double Cosine(string json) => System.Text.Json.JsonDocument.Parse(json).RootElement
            .GetProperty("outputs")[0].GetProperty("meanCosine").GetDouble();
        Assert.True(Cosine(b.Out) > Cosine(a.Out), $"reconstructed {Cosine(b.Out)} vs magnitude {Cosine(a.Out)}");
    }

    [Fact]
    public async Task Prune_SensitivityWithoutCalibration_IsOneLineNamingTheFix()
    {
        var output = Path.Combine(RealModels.TempDir("prune-cli-sens-bad"), "out.onnx");
        var run = await CliRunner.Run("prune", RealModels.MlpSample, "-o", output, "--sparsity", "0.8", "--allocation", "sensitivity");
        run.AssertCleanFailure(1);
        Assert.Contains("--calibration SPEC", run.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task Prune_SensitivityAllocation_HitsTheTotal_AndShowsEachLayersSparsityAndSensitivity()
    {
        var dir = RealModels.TempDir("prune-cli-sensitivity");
        var output = Path.Combine(dir, "mlp.s80.onnx");
        var train = $"fashion-mnist:{RealModels.FashionMnistSubset}:train";
        var run = await CliRunner.Run("prune", RealModels.MlpSample, "-o", output, "--sparsity", "0.8", "--allocation", "Sensitivity",
            "--calibration", train, "--min-cosine", "-1", "-q");
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.Contains("sensitivity", run.Out, StringComparison.Ordinal);

        // 80% of all three weights' values (each over the default 1024 elements) are zero in the file, shared unevenly.
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(output));
        var weights = proto.Graph.Initializer.Where(t => t.Name.EndsWith(".weight", StringComparison.Ordinal)).Select(TensorData.ToFloatArray).ToList();
        Assert.Equal(Math.Round(0.8 * weights.Sum(w => w.Length)), weights.Sum(w => w.Count(v => v == 0)));
        Assert.True(weights.Select(w => (double)w.Count(v => v == 0) / w.Length).Distinct().Count() > 1);
    }

    [Fact]
    public async Task Prune_ReconstructWithoutCalibration_FailsCleanly()
    {
        var output = Path.Combine(RealModels.TempDir("prune-cli-rec-bad"), "out.onnx");
        var run = await CliRunner.Run("prune", RealModels.MlpSample, "-o", output, "--sparsity", "0.5", "--reconstruct");
        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith("error:", run.Err.Trim());
        Assert.False(File.Exists(output));
    }
}
