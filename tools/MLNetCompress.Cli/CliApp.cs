using System.CommandLine;
using MLNetCompress.Cli.Commands;

namespace MLNetCompress.Cli;

/// <summary>
/// The <c>mlnet-compress</c> command line, runnable in-process: tests call <see cref="RunAsync(string[], TextWriter, TextWriter)"/>
/// with string writers and read the exit code and both streams.
/// </summary>
public static class CliApp
{
    /// <summary>Runs the command line with output to the given writers (no terminal: plain text, no progress bars).</summary>
    /// <returns>0 on success, 1 for bad input or a failed run, 2 for a usage error, 130 when cancelled.</returns>
    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken = default) =>
        RunAsync(args, stdout, stderr, interactive: false, cancellationToken);

    /// <summary>Runs the command line; <paramref name="interactive"/> says whether stdout is a terminal.</summary>
    internal static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, bool interactive, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        var globals = new GlobalOptions();
        var root = BuildRoot(globals, stdout, stderr, interactive);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // One line, like every other error; --help shows the full usage.
            var command = string.Join(' ', parse.CommandResult.Command is RootCommand ? [] : CommandPath(parse.CommandResult.Command));
            // "Unrecognized command or argument 'x'" says more than the "required command" error that comes with it.
            var error = parse.Errors.FirstOrDefault(e => e.Message.StartsWith("Unrecognized", StringComparison.Ordinal)) ?? parse.Errors[0];
            stderr.WriteLine($"error: {ErrorReporter.OneLine(error.Message).TrimEnd('.')} (see 'mlnet-compress {(command.Length > 0 ? command + " " : "")}--help')");
            return ErrorReporter.Usage;
        }
        try
        {
            var config = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
            return await parse.InvokeAsync(config, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            var (code, message) = ErrorReporter.Describe(e);
            stdout.Flush();
            stderr.WriteLine($"error: {message}");
            if (parse.GetValue(globals.Verbose)) stderr.WriteLine(e.ToString());
            return code;
        }
    }

    private static IEnumerable<string> CommandPath(Command command)
    {
        var names = new List<string>();
        for (Symbol? s = command; s is not null and not RootCommand; s = s.Parents.FirstOrDefault())
            names.Insert(0, s.Name);
        return names;
    }

    internal static RootCommand BuildRoot(GlobalOptions globals, TextWriter stdout, TextWriter stderr, bool interactive)
    {
        var root = new RootCommand(
            "mlnet-compress: make ONNX models smaller and faster from .NET.\n" +
            "Exit codes: 0 success, 1 bad input (missing or invalid model, bad data spec) or a failed run, 2 usage error.");
        root.Options.Add(globals.Quiet);
        root.Options.Add(globals.Verbose);
        CliContext Context(ParseResult r) =>
            new(stdout, stderr, interactive, r.GetValue(globals.Quiet), r.GetValue(globals.Verbose));
        root.Subcommands.Add(InspectCommand.Create(Context));
        root.Subcommands.Add(EvalCommand.Create(Context));
        root.Subcommands.Add(DemoCommand.Create(Context));
        root.Subcommands.Add(UpgradeCommand.Create(Context));
        root.Subcommands.Add(PruneCommand.Create(Context));
        root.Subcommands.Add(ClusterCommand.Create(Context));
        root.Subcommands.Add(LowRankCommand.Create(Context));
        root.Subcommands.Add(PackCommand.Create(Context));
        root.Subcommands.Add(UnpackCommand.Create(Context));
        root.Subcommands.Add(QuantizeCommand.Create(Context));
        root.Subcommands.Add(SoftLabelsCommand.Create(Context));
        root.Subcommands.Add(DistillCommand.Create(Context));
        root.Subcommands.Add(CompressCommand.Create(Context));
        return root;
    }
}

/// <summary>The options every command takes.</summary>
internal sealed class GlobalOptions
{
    public Option<bool> Quiet { get; } = new("--quiet", "-q")
    {
        Description = "Print results only: no progress bars or status lines.",
        Recursive = true,
    };

    public Option<bool> Verbose { get; } = new("--verbose", "-v")
    {
        Description = "On error, print the full exception with its stack trace after the one-line message.",
        Recursive = true,
    };
}
