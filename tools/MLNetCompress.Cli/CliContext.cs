using MLNetCompress.Cli.Output;
using Spectre.Console;

namespace MLNetCompress.Cli;

/// <summary>
/// Where a command writes and how: the output and error writers, whether stdout is a terminal (tables are
/// drawn and progress bars shown only then), and the global --quiet / --verbose switches.
/// </summary>
internal sealed class CliContext
{
    private readonly Lazy<IAnsiConsole> console;

    public CliContext(TextWriter stdout, TextWriter stderr, bool interactive, bool quiet, bool verbose)
    {
        Out = stdout; Err = stderr; Interactive = interactive; Quiet = quiet; Verbose = verbose;
        console = new Lazy<IAnsiConsole>(() => AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(stdout),
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Detect : InteractionSupport.No,
        }));
    }

    public TextWriter Out { get; }

    public TextWriter Err { get; }

    /// <summary>True when stdout is a terminal.</summary>
    public bool Interactive { get; }

    /// <summary>--quiet: results only, no progress.</summary>
    public bool Quiet { get; }

    /// <summary>--verbose: stack traces on error.</summary>
    public bool Verbose { get; }

    /// <summary>True when progress bars are drawn: a terminal and no --quiet.</summary>
    public bool ShowProgress => Interactive && !Quiet;

    /// <summary>The Spectre console over stdout (used for tables and progress on a terminal).</summary>
    public IAnsiConsole Console => console.Value;

    /// <summary>Prints a document: drawn on a terminal, plain text otherwise.</summary>
    public void Render(Document doc)
    {
        if (Interactive) SpectreRenderer.Render(Console, doc);
        else PlainRenderer.Render(Out, doc);
        Out.Flush();
    }

    /// <summary>Writes a line of JSON (or any machine-readable text) as is.</summary>
    public void WriteRaw(string text)
    {
        Out.WriteLine(text);
        Out.Flush();
    }
}
