using System.CommandLine;
using Microsoft.ML.OnnxRuntime;
using MLNetCompress.Cli.Commands;
using MLNetCompress.Testing;

namespace MLNetCompress.Cli.Tests;

public class PackCommandTests
{
    /// <summary>Runs pack/unpack through a root of their own, with the same one-line error handling as the CLI
    /// (so the commands are checked whether or not the application has registered them yet).</summary>
    private static async Task<CliResult> Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var root = new RootCommand();
        CliContext Context(ParseResult r) => new(stdout, stderr, interactive: false, quiet: true, verbose: false);
        root.Subcommands.Add(PackCommand.Create(Context));
        root.Subcommands.Add(UnpackCommand.Create(Context));
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            stderr.WriteLine($"error: {parse.Errors[0].Message}");
            return new CliResult(ErrorReporter.Usage, stdout.ToString(), stderr.ToString());
        }
        int code;
        try
        {
            code = await parse.InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            var (exit, message) = ErrorReporter.Describe(e);
            stderr.WriteLine($"error: {message}");
            code = exit;
        }
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task PackThenUnpack_GivesTheSameBytes_AndReportsSizes()
    {
        var dir = RealModels.TempDir("pack-cli");
        var packed = Path.Combine(dir, "mlp.mlcz");
        var restored = Path.Combine(dir, "mlp.onnx");
        var pack = await Run("pack", RealModels.MlpSample, "-o", packed, "--quality", "5");
        Assert.True(pack.ExitCode == 0, pack.Err);
        Assert.Contains("x smaller", pack.Out);
        Assert.Contains("bytes4", pack.Out);
        Assert.True(new FileInfo(packed).Length < new FileInfo(RealModels.MlpSample).Length);

        var unpack = await Run("unpack", packed, "-o", restored);
        Assert.True(unpack.ExitCode == 0, unpack.Err);
        Assert.Contains("SHA-256 verified", unpack.Out);
        Assert.Equal(File.ReadAllBytes(RealModels.MlpSample), File.ReadAllBytes(restored));
        using var session = new InferenceSession(restored);
        Assert.NotEmpty(session.OutputMetadata);
    }

    [Fact]
    public async Task Unpack_OfADamagedFile_FailsWithOneLineAndWritesNothing()
    {
        var dir = RealModels.TempDir("pack-cli-bad");
        var packed = Path.Combine(dir, "mlp.mlcz");
        var restored = Path.Combine(dir, "mlp.onnx");
        Assert.Equal(0, (await Run("pack", RealModels.MlpSample, "-o", packed, "--quality", "3")).ExitCode);
        var bytes = File.ReadAllBytes(packed);
        File.WriteAllBytes(packed, bytes[..(bytes.Length / 2)]);
        var run = await Run("unpack", packed, "-o", restored);
        run.AssertCleanFailure(ErrorReporter.Failure);
        Assert.Contains("truncated", run.Err);
        Assert.False(File.Exists(restored));

        var notPacked = await Run("unpack", RealModels.MlpSample, "-o", restored);
        notPacked.AssertCleanFailure(ErrorReporter.Failure);
        Assert.Contains("not a packed model", notPacked.Err);
    }

    [Fact]
    public async Task Pack_OfAMissingModel_OrABadQuality_Fails()
    {
        var dir = RealModels.TempDir("pack-cli-missing");
        var missing = await Run("pack", Path.Combine(dir, "none.onnx"), "-o", Path.Combine(dir, "x.mlcz"));
        missing.AssertCleanFailure(ErrorReporter.Failure);
        var quality = await Run("pack", RealModels.MlpSample, "-o", Path.Combine(dir, "x.mlcz"), "--quality", "12");
        Assert.Equal(ErrorReporter.Usage, quality.ExitCode);
    }
}
