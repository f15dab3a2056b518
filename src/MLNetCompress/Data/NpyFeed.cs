using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Data;

/// <summary>Rows of a .npy array fed to a single-input model: float32 inputs take any of the supported dtypes
/// (converted), int64 inputs take int32/int64. The array's dims after the first must fit the model's.</summary>
public sealed class NpyFeed : DataFeed
{
    private readonly NpyArray _array;
    private readonly long[] _rowShape;
    private readonly int _rowLength;
    private readonly bool _asInt64;

    /// <summary>Reads <paramref name="path"/> and checks it against the model's single input.</summary>
    public NpyFeed(string path, IReadOnlyList<ModelInputInfo> inputs)
        : this(NpyArray.Read(path), inputs) { }

    /// <summary>Feeds an array already read.</summary>
    public NpyFeed(NpyArray array, IReadOnlyList<ModelInputInfo> inputs)
        : base(inputs)
    {
        ArgumentNullException.ThrowIfNull(array);
        _array = array;
        if (inputs.Count != 1)
            throw new DataSpecException($"npy fills one input but the model has {inputs.Count}: {string.Join(", ", inputs.Select(i => $"'{i.Name}'"))}");
        var input = inputs[0];
        _asInt64 = input.ElementType switch
        {
            TensorElementType.Float => false,
            TensorElementType.Int64 when array.DType is NpyDType.Int32 or NpyDType.Int64 => true,
            TensorElementType.Int64 => throw new DataSpecException($"npy {array.Name} holds {array.DType} but model input '{input.Name}' wants Int64"),
            _ => throw new DataSpecException($"npy gives float32 or int64 but model input '{input.Name}' wants {input.ElementType}"),
        };
        _rowShape = array.Shape.Skip(1).ToArray();
        if (!input.AcceptsRows(_rowShape))
            throw new DataSpecException($"npy {Path.GetFileName(array.Name)} gives {ModelInputInfo.FormatRows(_rowShape)} but model input '{input.Name}' wants {input.FormatShape()}");
        _rowLength = checked((int)array.RowLength);
    }

    /// <inheritdoc />
    public override long RowCount => _array.Rows;

    /// <inheritdoc />
    public override bool HasLabels => false;

    /// <inheritdoc />
    public override string Description =>
        $"npy {Path.GetFileName(_array.Name)}, {RowCount} rows as {ModelInputInfo.FormatRows(_rowShape)}";

    /// <inheritdoc />
    protected override DataBatch CreateBatch(long start, int count)
    {
        var shape = BatchShape(count, _rowShape);
        NamedTensor tensor;
        if (_asInt64)
        {
            var data = new long[(long)count * _rowLength];
            _array.CopyRows(start, count, data);
            tensor = new NamedTensor(data, shape);
        }
        else
        {
            var data = new float[(long)count * _rowLength];
            _array.CopyRows(start, count, data);
            tensor = new NamedTensor(data, shape);
        }
        var inputs = new Dictionary<string, NamedTensor>(1) { [Inputs[0].Name] = tensor };
        return new DataBatch(inputs, count, start, RowIds("row", start, count));
    }
}
