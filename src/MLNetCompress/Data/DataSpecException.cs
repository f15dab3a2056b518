namespace MLNetCompress.Data;

/// <summary>A data spec that cannot be read, a data file that is malformed, or data that does not fit the
/// model's inputs. The message is one line, ready to show to a user.</summary>
public sealed class DataSpecException : Exception
{
    /// <summary>Creates the exception with a one-line message.</summary>
    public DataSpecException(string message) : base(message) { }

    /// <summary>Creates the exception with a one-line message and the error behind it.</summary>
    public DataSpecException(string message, Exception inner) : base(message, inner) { }
}
