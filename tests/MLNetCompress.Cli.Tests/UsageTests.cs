namespace MLNetCompress.Cli.Tests;

public class UsageTests
{
    [Theory]
    [InlineData("")]
    [InlineData("frobnicate")]
    [InlineData("inspect")]
    [InlineData("inspect a.onnx --bogus")]
    [InlineData("eval --baseline a.onnx --candidate b.onnx")]
    [InlineData("eval --baseline a.onnx --candidate b.onnx --data random --n 0")]
    [InlineData("eval --baseline a.onnx --candidate b.onnx --data random --batch-size many")]
    [InlineData("eval --baseline a.onnx --candidate b.onnx --data random --threads -1")]
    public async Task UsageErrors_ExitTwo_WithOneErrorLine(string commandLine)
    {
        var run = await CliRunner.Run(commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        run.AssertCleanFailure(2);
        Assert.Contains("--help", run.Err); // points at the fix
    }

    [Theory]
    [InlineData("", "inspect eval demo --quiet --verbose")]
    [InlineData("inspect", "MODEL --json --quiet --verbose")]
    [InlineData("eval", "--baseline --candidate --data --n --threads --batch-size --vocab --json")]
    [InlineData("demo", "--out --data --model")]
    public async Task Help_DocumentsEveryOption(string command, string expectedWords)
    {
        var expected = expectedWords.Split(' ');
        var run = await CliRunner.Run(command.Length == 0 ? ["--help"] : [command, "--help"]);
        Assert.Equal(0, run.ExitCode);
        Assert.Equal("", run.Err);
        foreach (var e in expected) Assert.Contains(e, run.Out);
    }
}
