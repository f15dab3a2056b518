namespace MLNetCompress.Onnx;

/// <summary>
/// A model, tensor or external-data file that cannot be read or is not valid ONNX. The message is one
/// line that names the problem and, where there is one, the fix.
/// </summary>
public sealed class OnnxFormatException : Exception
{
    /// <summary>Creates the exception with a one-line message.</summary>
    public OnnxFormatException(string message) : base(OneLine(message)) { }

    /// <summary>Creates the exception with a one-line message and the underlying cause.</summary>
    public OnnxFormatException(string message, Exception inner) : base(OneLine(message), inner) { }

    // Names in a hostile model (tensor names, locations) may hold line breaks or other control
    // characters; the message stays one printable line whatever they hold.
    internal static string OneLine(string message)
    {
        if (!message.Any(char.IsControl)) return message;
        return string.Create(message.Length, message, static (span, m) =>
        {
            for (int i = 0; i < m.Length; i++) span[i] = char.IsControl(m[i]) ? ' ' : m[i];
        });
    }
}
