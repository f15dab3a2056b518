using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Runtime;
using Microsoft.ML.OnnxRuntime;

namespace MLNetCompress.Cli;

/// <summary>Turns an exception into an exit code and one line for stderr that names the problem and the fix.</summary>
internal static class ErrorReporter
{
    /// <summary>Exit code of a run that succeeded.</summary>
    public const int Success = 0;

    /// <summary>Exit code for bad input: a missing or invalid model, a bad data spec, a run that failed.</summary>
    public const int Failure = 1;

    /// <summary>Exit code for a command line that is not understood.</summary>
    public const int Usage = 2;

    /// <summary>Exit code after Ctrl+C (128 + SIGINT, as shells report it).</summary>
    public const int Cancelled = 130;

    public static (int ExitCode, string Message) Describe(Exception e) => e switch
    {
        InputException => (Failure, OneLine(e.Message)),
        OperationCanceledException => (Cancelled, "cancelled"),
        // Our own exceptions already carry one-line messages written for users.
        OnnxFormatException or DataSpecException or OrtRuntimeException or CompressionException => (Failure, OneLine(e.Message)),
        // Our callers put the option and path in the message; the runtime's own message names the path too.
        FileNotFoundException f => (Failure, f.FileName is { } name && !f.Message.Contains(name, StringComparison.Ordinal)
            ? $"file not found: '{name}'; check the path"
            : $"{OneLine(f.Message).TrimEnd('.')}; check the path"),
        DirectoryNotFoundException => (Failure, $"{OneLine(e.Message).TrimEnd('.')}; check the path"),
        UnauthorizedAccessException => (Failure, $"permission denied: {OneLine(e.Message).TrimEnd('.')}; check the permissions or choose another path"),
        IOException => (Failure, $"I/O error: {OneLine(e.Message).TrimEnd('.')}; check the path and free disk space"),
        OnnxRuntimeException => (Failure, $"ONNX Runtime failed: {OneLine(e.Message).TrimEnd('.')} (use --verbose for details)"),
        _ => (Failure, $"{OneLine(e.Message).TrimEnd('.')} ({e.GetType().Name}; use --verbose for details)"),
    };

    /// <summary>The first non-empty line of a message, trimmed.</summary>
    public static string OneLine(string message)
    {
        foreach (var line in message.Split('\n'))
        {
            var t = line.Trim();
            if (t.Length > 0) return t;
        }
        return "unknown error";
    }
}
