namespace MLNetCompress.Packing;

/// <summary>A packed model (.mlcz) is damaged, truncated or not one at all; the message is one line saying what is wrong.</summary>
public sealed class PackedModelException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PackedModelException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public PackedModelException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Creates the exception.</summary>
    public PackedModelException() : base("not a packed model.") { }
}
