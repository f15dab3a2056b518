namespace MLNetCompress.Cli;

/// <summary>Input the command cannot work with (a path that is a folder, models that cannot be compared, no
/// bundled sample found); exit code 1. The message is one line that names the problem and the fix.</summary>
internal sealed class InputException(string message, Exception? inner = null) : Exception(message, inner);
