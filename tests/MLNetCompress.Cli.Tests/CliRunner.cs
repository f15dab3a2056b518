using MLNetCompress.Cli;

namespace MLNetCompress.Cli.Tests;

/// <summary>What one in-process run of the command line gave.</summary>
internal sealed record CliResult(int ExitCode, string Out, string Err)
{
    public string[] ErrLines => Err.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Asserts the run failed the way every failure must: the exit code, one "error:" line on stderr,
    /// no stack trace, nothing on stdout.</summary>
    public void AssertCleanFailure(int exitCode)
    {
        Assert.True(ExitCode == exitCode, $"exit code {ExitCode}, expected {exitCode}; stderr: {Err}");
        var line = Assert.Single(ErrLines);
        Assert.StartsWith("error: ", line);
        Assert.DoesNotContain("   at ", Err);
        Assert.Equal("", Out);
    }
}

internal static class CliRunner
{
    public static async Task<CliResult> Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr);
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }
}
