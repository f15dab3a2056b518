namespace MLNetCompress.Onnx;

/// <summary>
/// A model, tensor or external-data file that cannot be read or is not valid ONNX. The message is one
/// line that names the problem and, where there is one, the fix.
/// </summary>
public sealed class OnnxFormatException : Exception
{
    /// <summary>Creates the exception with a one-line message.</summary>
    public OnnxFormatException(string message) : base(message) { }

    /// <summary>Creates the exception with a one-line message and the underlying cause.</summary>
    public OnnxFormatException(string message, Exception inner) : base(message, inner) { }
}
