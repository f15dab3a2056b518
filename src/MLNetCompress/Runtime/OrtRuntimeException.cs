namespace MLNetCompress.Runtime;

/// <summary>ONNX Runtime could not be set up as asked (no CUDA provider, a model that does not load).
/// The message is one line.</summary>
public sealed class OrtRuntimeException : Exception
{
    /// <summary>Creates the exception with a one-line message.</summary>
    public OrtRuntimeException(string message) : base(message) { }

    /// <summary>Creates the exception with a one-line message and the ONNX Runtime error behind it.</summary>
    public OrtRuntimeException(string message, Exception inner) : base(message, inner) { }

    /// <summary>The first line of an exception's message, for one-line reports.</summary>
    public static string OneLine(Exception e)
    {
        var text = e.Message.Trim();
        var end = text.IndexOfAny(['\r', '\n']);
        return end < 0 ? text : text[..end].TrimEnd();
    }
}
