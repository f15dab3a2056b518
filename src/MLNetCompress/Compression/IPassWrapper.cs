using MLNetCompress.Onnx.Passes;

namespace MLNetCompress.Compression;

/// <summary>A pass that runs another and adds something around it (a recipe's size probe). <see cref="ModelCompressor"/>
/// looks through it to find the pass it wraps, and wraps a replacement the same way when it runs that pass again.</summary>
internal interface IPassWrapper
{
    /// <summary>The pass run inside.</summary>
    IGraphPass Inner { get; }

    /// <summary>The same wrapper around another pass.</summary>
    IGraphPass Wrap(IGraphPass inner);
}
