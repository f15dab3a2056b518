using MLNetCompress.Evaluation;

namespace MLNetCompress.Compression;

/// <summary>A compression run stopped; nothing was written. The message is one line.</summary>
public sealed class CompressionException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CompressionException(CompressionStage stage, string message, Exception? inner = null)
        : base(message, inner) => Stage = stage;

    /// <summary>Creates the exception for a model that failed verification.</summary>
    public CompressionException(string message, VerifyResult verification)
        : base(message) => (Stage, Verification) = (CompressionStage.Verify, verification);

    /// <summary>The step that failed.</summary>
    public CompressionStage Stage { get; }

    /// <summary>The verifier's verdict when verification refused the model, else null.</summary>
    public VerifyResult? Verification { get; }
}
