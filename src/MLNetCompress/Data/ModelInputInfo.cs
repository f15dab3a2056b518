using System.Text;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Data;

/// <summary>One model input as a data feed sees it: name, element type and dims, where -1 marks a symbolic
/// (free) dimension. Build it by hand or take it from an <see cref="InferenceSession"/>.</summary>
/// <param name="Name">The input's name in the graph.</param>
/// <param name="ElementType">The tensor element type the model expects.</param>
/// <param name="Dims">The dims; -1 for a symbolic dimension. Empty when the model states no shape.</param>
/// <param name="SymbolicDims">Names of the symbolic dims (same length as <paramref name="Dims"/>), or null.</param>
public sealed record ModelInputInfo(
    string Name,
    TensorElementType ElementType,
    IReadOnlyList<long> Dims,
    IReadOnlyList<string?>? SymbolicDims = null)
{
    /// <summary>Number of dims; 0 when the model states no shape.</summary>
    public int Rank => Dims.Count;

    /// <summary>True when the first dimension is fixed (a model exported for one batch size only).</summary>
    public bool HasFixedBatch => Dims.Count > 0 && Dims[0] > 0;

    /// <summary>The inputs of a loaded session, in the session's order.</summary>
    public static IReadOnlyList<ModelInputInfo> FromSession(InferenceSession session)
    {
        ArgumentNullException.ThrowIfNull(session);
        return FromMetadata(session.InputMetadata);
    }

    /// <summary>Inputs from ONNX Runtime's metadata; throws <see cref="DataSpecException"/> for a non-tensor input.</summary>
    public static IReadOnlyList<ModelInputInfo> FromMetadata(IReadOnlyDictionary<string, NodeMetadata> metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var result = new List<ModelInputInfo>(metadata.Count);
        foreach (var (name, meta) in metadata)
        {
            if (!meta.IsTensor)
                throw new DataSpecException($"model input '{name}' is a {meta.OnnxValueType}, not a tensor; data feeds give tensors only");
            var dims = Array.ConvertAll(meta.Dimensions, d => d < 0 ? -1L : d);
            var symbols = meta.SymbolicDimensions is { Length: > 0 } s && s.Length == dims.Length
                ? Array.ConvertAll(s, x => string.IsNullOrEmpty(x) ? null : x)
                : null;
            result.Add(new ModelInputInfo(name, meta.ElementDataType, dims, symbols));
        }
        return result;
    }

    /// <summary>The shape as text, "N" for a free first dim, the dim's name (or "?") for other free dims:
    /// e.g. "[N,1,28,28]".</summary>
    public string FormatShape()
    {
        if (Dims.Count == 0) return "[any shape]";
        var sb = new StringBuilder("[");
        for (var i = 0; i < Dims.Count; i++)
        {
            if (i > 0) sb.Append(',');
            if (Dims[i] >= 0) sb.Append(Dims[i]);
            else if (i == 0) sb.Append('N');
            else sb.Append(SymbolicDims?[i] ?? "?");
        }
        return sb.Append(']').ToString();
    }

    /// <summary>True when rows shaped <paramref name="rowShape"/> (the shape without the batch axis) fit this input.</summary>
    public bool AcceptsRows(ReadOnlySpan<long> rowShape)
    {
        if (Dims.Count == 0) return true;
        if (Dims.Count != rowShape.Length + 1) return false;
        for (var i = 0; i < rowShape.Length; i++)
            if (Dims[i + 1] >= 0 && Dims[i + 1] != rowShape[i]) return false;
        return true;
    }

    /// <summary>Formats a row shape as the batch shape a feed gives, e.g. [N,1,28,28].</summary>
    public static string FormatRows(ReadOnlySpan<long> rowShape)
    {
        var sb = new StringBuilder("[N");
        foreach (var d in rowShape) sb.Append(',').Append(d);
        return sb.Append(']').ToString();
    }
}
