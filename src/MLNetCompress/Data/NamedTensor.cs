using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Data;

/// <summary>A dense tensor of one model input for one batch: float32 or int64 data in row-major order, the
/// first axis being rows. The data array is exactly as long as the shape says.</summary>
public sealed class NamedTensor
{
    private readonly long[] _shape;

    /// <summary>A float32 tensor over <paramref name="data"/> (not copied).</summary>
    public NamedTensor(float[] data, long[] shape)
        : this(TensorElementType.Float, data, shape) { }

    /// <summary>An int64 tensor over <paramref name="data"/> (not copied).</summary>
    public NamedTensor(long[] data, long[] shape)
        : this(TensorElementType.Int64, data, shape) { }

    private NamedTensor(TensorElementType type, Array data, long[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length == 0) throw new ArgumentException("a batch tensor needs at least one axis (rows)", nameof(shape));
        long count = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"shape [{string.Join(",", shape)}] has a negative dim", nameof(shape));
            count *= d;
        }
        if (count != data.LongLength)
            throw new ArgumentException($"shape [{string.Join(",", shape)}] holds {count} values but the data has {data.LongLength}", nameof(data));
        ElementType = type;
        Data = data;
        _shape = shape;
    }

    /// <summary>Float or Int64.</summary>
    public TensorElementType ElementType { get; }

    /// <summary>The dims, rows first.</summary>
    public IReadOnlyList<long> Shape => _shape;

    /// <summary>The data: a float[] or a long[].</summary>
    public Array Data { get; }

    /// <summary>Number of rows (the first dim).</summary>
    public int RowCount => checked((int)_shape[0]);

    /// <summary>The float32 data; throws when the tensor is int64.</summary>
    public float[] FloatData => Data as float[] ?? throw new InvalidOperationException($"tensor is {ElementType}, not Float");

    /// <summary>The int64 data; throws when the tensor is float32.</summary>
    public long[] Int64Data => Data as long[] ?? throw new InvalidOperationException($"tensor is {ElementType}, not Int64");

    /// <summary>The shape array itself, for ONNX Runtime calls that take a long[] (never modified).</summary>
    internal long[] ShapeArray => _shape;
}
