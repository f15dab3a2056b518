using MLNetCompress.Inspection;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

public class DemoCommandTests
{
    [Fact]
    public async Task Demo_CompressesTheBundledCnn_AndPrintsBothReports()
    {
        var dir = RealModels.TempDir("demo");
        // No --model and no --data: the bundled sample and subset are found by walking up from the test folder.
        var run = await CliRunner.Run("demo", "--out", dir);
        Assert.True(run.ExitCode == 0, run.Err);
        Assert.Equal("", run.Err);

        var output = Path.Combine(dir, "fashion_mnist_cnn.int8.onnx");
        Assert.True(File.Exists(output));
        long before = new FileInfo(RealModels.CnnSample).Length, after = new FileInfo(output).Length;
        Assert.True(after < before / 3, $"{after} bytes is not much smaller than {before}");

        // The compression report, with the real byte counts...
        Assert.Contains($"bytes before  {before:N0}", run.Out);
        Assert.Contains($"bytes after   {after:N0}", run.Out);
        Assert.Contains("classifier.1.weight", run.Out);
        Assert.Contains("int8 per-channel", run.Out);
        // ...then the eval table on the bundled test subset.
        Assert.Contains("fashion-mnist test, 1000 rows", run.Out);
        Assert.Matches(@"accuracy baseline +accuracy candidate", run.Out);
        Assert.True(run.Out.IndexOf("bytes before", StringComparison.Ordinal) < run.Out.IndexOf("Output fidelity", StringComparison.Ordinal));

        // The written model is what inspect sees: int8 weights behind Cast→Mul, attributed to their layers.
        var r = ModelInspector.Inspect(output);
        var gemm = r.Layers.First(l => l.Op == "Gemm");
        Assert.Equal("int8", gemm.StorageType);
        Assert.Equal(["Mul", "Cast"], gemm.Via);
    }

    [Fact]
    public async Task Demo_BadDataSpec_WritesNothing()
    {
        var dir = Path.Combine(RealModels.TempDir("demo-bad-data"), "out");
        var run = await CliRunner.Run("demo", "--out", dir, "--data", "npy:/nonexistent.npy");
        run.AssertCleanFailure(1);
        Assert.False(Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any());
    }

    [Fact]
    public async Task Demo_BadModel_ExitsOne_WritesNothing()
    {
        var tmp = RealModels.TempDir("demo-bad-model");
        var model = Path.Combine(tmp, "broken.onnx");
        File.WriteAllBytes(model, [1, 2, 3, 4, 5]);
        var dir = Path.Combine(tmp, "out");
        var run = await CliRunner.Run("demo", "--out", dir, "--model", model, "--data", "random");
        run.AssertCleanFailure(1);
        Assert.False(Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any());
    }
}
