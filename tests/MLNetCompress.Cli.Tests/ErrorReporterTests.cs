using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

public class ErrorReporterTests
{
    public static TheoryData<Exception, string> Cases => new()
    {
        { new OnnxFormatException("model file 'm.onnx' is empty; pass an .onnx file."), "model file 'm.onnx' is empty; pass an .onnx file." },
        { new DataSpecException("unknown data spec 'x:'"), "unknown data spec 'x:'" },
        { new CompressionException(CompressionStage.Write, "could not write 'o.onnx': disk full"), "could not write 'o.onnx': disk full" },
        { new FileNotFoundException("Could not find file '/a/b.onnx'.", "/a/b.onnx"), "Could not find file '/a/b.onnx'; check the path" },
        { new UnauthorizedAccessException("Access to the path '/root/x' is denied."), "permission denied: Access to the path '/root/x' is denied; check the permissions or choose another path" },
        { new IOException("No space left on device"), "I/O error: No space left on device; check the path and free disk space" },
        { new InvalidCastException("boom\n   at Somewhere()"), "boom (InvalidCastException; use --verbose for details)" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryException_BecomesOneLineAndExitCodeOne(Exception e, string expected)
    {
        var (code, message) = ErrorReporter.Describe(e);
        Assert.Equal(1, code);
        Assert.Equal(expected, message);
        Assert.DoesNotContain('\n', message);
    }

    [Fact]
    public void Cancellation_IsExitCode130()
    {
        Assert.Equal((130, "cancelled"), ErrorReporter.Describe(new TaskCanceledException()));
    }

    [Fact]
    public async Task CancelledRun_Exits130_WithOneLine()
    {
        using var cancel = new CancellationTokenSource();
        cancel.Cancel();
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var mlp = RealModels.MlpSample;
        int code = await CliApp.RunAsync(["eval", "-a", mlp, "-b", mlp, "-d", "random"], stdout, stderr, cancel.Token);
        Assert.Equal(130, code);
        Assert.Equal("error: cancelled", stderr.ToString().Trim());
    }
}
