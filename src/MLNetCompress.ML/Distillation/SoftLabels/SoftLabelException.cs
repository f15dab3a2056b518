namespace MLNetCompress.ML.Distillation;

/// <summary>A soft-label file or run that cannot go on (a file that is not a soft-label file, shards that do not
/// fit together, a teacher whose output is not a class distribution). The message is one line that names the
/// problem and the fix.</summary>
public sealed class SoftLabelException : Exception
{
    /// <summary>Creates the exception with a one-line message.</summary>
    public SoftLabelException(string message) : base(message) { }

    /// <summary>Creates the exception with a one-line message and its cause.</summary>
    public SoftLabelException(string message, Exception inner) : base(message, inner) { }
}
