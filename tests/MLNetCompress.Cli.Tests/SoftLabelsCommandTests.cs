using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetCompress.ML.Distillation;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

public class SoftLabelsCommandTests
{
    private static string Spec => $"fashion-mnist:{RealModels.FashionMnistSubset}:test";

    private static float[][] SoftLabels(string path) =>
        SoftLabelFile.Load(new MLContext(1), path).GetColumn<VBuffer<float>>(SoftLabelFile.SoftLabelColumn).Select(v => v.DenseValues().ToArray()).ToArray();

    [Fact]
    public async Task WritesAParquetFileThatLoadsBack()
    {
        var dir = RealModels.TempDir("cli-softlabels");
        var output = Path.Combine(dir, "cnn.parquet");
        var r = await CliRunner.Run("soft-labels", "--teacher", RealModels.CnnSample, "--data", Spec, "-o", output, "--temperature", "2", "--n", "120");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("temperature  2", r.Out);
        var info = SoftLabelFile.ReadInfo(output);
        Assert.Equal(120, info.Rows);
        Assert.Equal(2.0, info.Temperature);
        Assert.Equal(784, info.FeatureLength);
        var p = SoftLabels(output);
        Assert.Equal(120, p.Length);
        Assert.All(p, row => Assert.Equal(1.0, row.Sum(x => (double)x), 5));
    }

    [Fact]
    public async Task ShardsThenMergeEqualOneRunAndARerunKeepsAFinishedShard()
    {
        var dir = RealModels.TempDir("cli-softlabels-shards");
        string[] common = ["--teacher", RealModels.CnnSample, "--data", Spec, "--n", "90", "--top-k", "4", "-q"];
        Assert.Equal(0, (await CliRunner.Run(["soft-labels", .. common, "-o", Path.Combine(dir, "whole.csv")])).ExitCode);
        for (var i = 0; i < 3; i++)
            Assert.Equal(0, (await CliRunner.Run(["soft-labels", .. common, "-o", Path.Combine(dir, "part.idv"), "--shard", $"{i}/3"])).ExitCode);
        var rerun = await CliRunner.Run(["soft-labels", "--teacher", RealModels.CnnSample, "--data", Spec, "--n", "90", "--top-k", "4", "-o", Path.Combine(dir, "part.idv"), "--shard", "1/3"]);
        Assert.Equal(0, rerun.ExitCode);
        Assert.Contains("already complete", rerun.Err);

        var shards = Enumerable.Range(0, 3).Select(i => Path.Combine(dir, $"part.shard-{i}-of-3.idv")).Reverse().ToArray();
        var merged = Path.Combine(dir, "merged.parquet");
        var m = await CliRunner.Run(["soft-labels", "merge", .. shards, "-o", merged]);
        Assert.True(m.ExitCode == 0, m.Err);
        var a = SoftLabels(Path.Combine(dir, "whole.csv"));
        var b = SoftLabels(merged);
        Assert.Equal(a.Length, b.Length);
        for (var r = 0; r < a.Length; r++)
            for (var c = 0; c < a[r].Length; c++) Assert.True(Math.Abs(a[r][c] - b[r][c]) < 1e-6, $"row {r} class {c}");

        var missing = await CliRunner.Run(["soft-labels", "merge", shards[0], shards[1], "-o", Path.Combine(dir, "m2.parquet")]);
        missing.AssertCleanFailure(1);
        Assert.Contains("missing", missing.Err);
    }

    [Theory]
    [InlineData("3/2", "outside 0..1")]
    [InlineData("x", "i/n")]
    [InlineData("1/0", "at least 1")]
    public async Task BadShardIsOneLine(string shard, string expected)
    {
        var dir = RealModels.TempDir("cli-softlabels-bad");
        var r = await CliRunner.Run("soft-labels", "--teacher", RealModels.CnnSample, "--data", "random", "-o", Path.Combine(dir, "x.parquet"), "--shard", shard);
        r.AssertCleanFailure(1);
        Assert.Contains(expected, r.Err);
        Assert.Empty(Directory.GetFiles(dir));
    }

    [Fact]
    public async Task MissingTeacherBadSpecAndBadOutputAreOneLine()
    {
        var dir = RealModels.TempDir("cli-softlabels-bad");
        var output = Path.Combine(dir, "x.parquet");
        var teacher = await CliRunner.Run("soft-labels", "--teacher", Path.Combine(dir, "none.onnx"), "--data", "random", "-o", output);
        teacher.AssertCleanFailure(1);
        Assert.Contains("--teacher", teacher.Err);
        var spec = await CliRunner.Run("soft-labels", "--teacher", RealModels.CnnSample, "--data", "bogus:thing", "-o", output);
        spec.AssertCleanFailure(1);
        Assert.Contains("unknown data spec", spec.Err);
        var ext = await CliRunner.Run("soft-labels", "--teacher", RealModels.CnnSample, "--data", "random", "-o", Path.Combine(dir, "x.txt"));
        ext.AssertCleanFailure(1);
        Assert.Contains(".idv, .csv or .parquet", ext.Err);
        var name = await CliRunner.Run("soft-labels", "--teacher", RealModels.CnnSample, "--data", "random", "-o", output, "--output-name", "probs", "-q");
        name.AssertCleanFailure(1);
        Assert.Contains("no output 'probs'", name.Err);
        var noTeacher = await CliRunner.Run("soft-labels", "--data", "random", "-o", output);
        Assert.Equal(2, noTeacher.ExitCode);
        Assert.Single(noTeacher.ErrLines);
        var temperature = await CliRunner.Run("soft-labels", "--teacher", RealModels.CnnSample, "--data", "random", "-o", output, "--temperature", "0");
        Assert.Equal(2, temperature.ExitCode);
        Assert.Contains("--temperature", temperature.Err);
        Assert.Empty(Directory.GetFiles(dir));
    }
}
