using System.Collections;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNetCompress.Data;

namespace MLNetCompress.ML.Data;

/// <summary>
/// Model input batches from an ML.NET <see cref="IDataView"/>: each model input is filled from one column (by default
/// the column of the same name, the way <c>ApplyOnnxModel</c> pairs them), a vector (or scalar) of Single or Double for
/// a float input, of Int64 or Int32 for an int64 input. A row's values fill the input's dims after the batch dim in
/// row-major order; a free dim takes what the row's length leaves. Rows are copied straight into the batch tensor
/// through reused buffers: nothing is allocated per row.
/// </summary>
public sealed class DataViewFeed : IDataFeed
{
    private readonly IDataView _data;
    private readonly (ModelInputInfo Input, DataViewSchema.Column Column)[] _pairs;
    private readonly int _fixedBatch;

    /// <summary>Creates the feed.</summary>
    /// <param name="data">The rows.</param>
    /// <param name="inputs">The model inputs to fill (from the model's ONNX Runtime session).</param>
    /// <param name="columnFor">Column name by model input name; an input not listed reads the column of its own name.</param>
    /// <exception cref="DataSpecException">A column is missing or its type cannot feed its input (one line, naming both).</exception>
    public DataViewFeed(IDataView data, IReadOnlyList<ModelInputInfo> inputs, IReadOnlyDictionary<string, string>? columnFor = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(inputs);
        _data = data;
        Inputs = inputs;
        _pairs = new (ModelInputInfo, DataViewSchema.Column)[inputs.Count];
        for (int i = 0; i < inputs.Count; i++)
        {
            var input = inputs[i];
            string name = columnFor?.GetValueOrDefault(input.Name) ?? input.Name;
            var column = data.Schema.GetColumnOrNull(name)
                ?? throw new DataSpecException($"model input '{input.Name}' reads column '{name}', which the data does not have; its columns: {string.Join(", ", data.Schema.Select(c => c.Name))}");
            var item = ItemType(column.Type);
            bool fits = input.ElementType switch
            {
                TensorElementType.Float => item == typeof(float) || item == typeof(double),
                TensorElementType.Int64 => item == typeof(long) || item == typeof(int),
                _ => false,
            };
            if (!fits)
                throw new DataSpecException($"column '{name}' holds {column.Type} but model input '{input.Name}' wants {input.ElementType}; " +
                                            "convert the column (e.g. mlContext.Transforms.Conversion.ConvertType) before the model");
            _pairs[i] = (input, column);
            if (input.HasFixedBatch)
            {
                if (_fixedBatch != 0 && _fixedBatch != input.Dims[0])
                    throw new DataSpecException($"model inputs disagree on the batch dim: '{input.Name}' wants {input.Dims[0]}, another {_fixedBatch}");
                _fixedBatch = checked((int)input.Dims[0]);
            }
        }
        Description = $"ML.NET data, columns {string.Join(", ", _pairs.Select(p => p.Column.Name))}";
    }

    /// <inheritdoc />
    public string Description { get; }

    /// <inheritdoc />
    public long? Count => _data.GetRowCount();

    /// <inheritdoc />
    public bool HasLabels => false;

    /// <inheritdoc />
    public IReadOnlyList<ModelInputInfo> Inputs { get; }

    /// <inheritdoc />
    public IEnumerable<DataBatch> Batches(int batchSize, int? maxRows = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (maxRows is < 0) throw new ArgumentOutOfRangeException(nameof(maxRows), "maxRows must not be negative");
        return Enumerate(_fixedBatch > 0 ? _fixedBatch : batchSize, maxRows ?? int.MaxValue);
    }

    private IEnumerable<DataBatch> Enumerate(int size, int maxRows)
    {
        using var cursor = _data.GetRowCursor(_pairs.Select(p => p.Column).Distinct());
        var readers = _pairs.Select(p => ColumnReader.Create(cursor, p.Column, p.Input)).ToArray();
        long first = 0;
        while (first < maxRows)
        {
            int want = (int)Math.Min(size, maxRows - first);
            int rows = 0;
            while (rows < want && cursor.MoveNext())
            {
                foreach (var reader in readers) reader.ReadRow(rows, want, first);
                rows++;
            }
            if (rows == 0 || (_fixedBatch > 0 && rows < _fixedBatch)) yield break;
            var tensors = new Dictionary<string, NamedTensor>(readers.Length, StringComparer.Ordinal);
            for (int i = 0; i < readers.Length; i++) tensors[_pairs[i].Input.Name] = readers[i].TakeBatch(rows);
            yield return new DataBatch(tensors, rows, first, new RowIds(first, rows));
            first += rows;
            if (rows < want) yield break;
        }
    }

    private static Type ItemType(DataViewType type) => (type is VectorDataViewType v ? v.ItemType : type).RawType;

    /// <summary>Reads one column into batch tensors for one model input, through a reused <see cref="VBuffer{T}"/>.</summary>
    private abstract class ColumnReader(DataViewSchema.Column column, ModelInputInfo input)
    {
        protected readonly DataViewSchema.Column Column = column;
        protected readonly ModelInputInfo Input = input;
        private int _rowLength = -1;

        /// <summary>Values in each row of the current batch (fixed by its first row).</summary>
        protected int RowLength => _rowLength;

        public static ColumnReader Create(DataViewRowCursor cursor, DataViewSchema.Column column, ModelInputInfo input)
        {
            var item = ItemType(column.Type);
            return input.ElementType == TensorElementType.Float
                ? item == typeof(float) ? new Reader<float, float>(cursor, column, input, static (s, d) => s.CopyTo(d))
                  : new Reader<double, float>(cursor, column, input, static (s, d) => { for (int i = 0; i < s.Length; i++) d[i] = (float)s[i]; })
                : item == typeof(long) ? new Reader<long, long>(cursor, column, input, static (s, d) => s.CopyTo(d))
                  : new Reader<int, long>(cursor, column, input, static (s, d) => { for (int i = 0; i < s.Length; i++) d[i] = s[i]; });
        }

        /// <summary>Copies the cursor's current row into row <paramref name="row"/> of a batch of at most <paramref name="capacity"/> rows.</summary>
        public abstract void ReadRow(int row, int capacity, long firstRow);

        /// <summary>The batch read so far as a tensor of <paramref name="rows"/> rows; the next row starts a new batch.</summary>
        public abstract NamedTensor TakeBatch(int rows);

        /// <summary>Checks a row's length against the batch's, fixing it on the batch's first row.</summary>
        protected void CheckLength(int length, int row, long firstRow)
        {
            if (row == 0) _rowLength = length;
            else if (length != _rowLength)
                throw new DataSpecException($"row {(firstRow + row).ToString(CultureInfo.InvariantCulture)} of column '{Column.Name}' has {length} values but the rows before it " +
                                            $"{_rowLength}; a batch needs rows of one length: pad the column to a fixed size");
        }

        /// <summary>The batch shape: the input's dims after the batch dim, a free dim taking what the row length leaves.</summary>
        protected long[] Shape(int rows)
        {
            var dims = Input.Dims;
            if (dims.Count <= 1) return dims.Count == 0 && RowLength != 1 ? [rows, RowLength] : [rows];
            var shape = new long[dims.Count];
            shape[0] = rows;
            long known = 1;
            int free = -1;
            for (int i = 1; i < dims.Count; i++)
            {
                if (dims[i] > 0) { shape[i] = dims[i]; known *= dims[i]; }
                else if (free < 0) free = i;
                else throw new DataSpecException($"model input '{Input.Name}' {Input.FormatShape()} has more than one free dim after the batch dim; " +
                                                 "give the estimator a shape dictionary that fixes them");
            }
            if (free >= 0 && known > 0 && RowLength % known == 0) shape[free] = RowLength / known;
            else if (free >= 0 || known != RowLength)
                throw new DataSpecException($"column '{Column.Name}' has {RowLength} values a row, which do not fill model input '{Input.Name}' {Input.FormatShape()}; " +
                                            "resize the column to the input's size");
            return shape;
        }
    }

    private sealed class Reader<TSource, TTarget> : ColumnReader where TSource : unmanaged where TTarget : unmanaged
    {
        private readonly ValueGetter<VBuffer<TSource>>? _vector;
        private readonly ValueGetter<TSource>? _scalar;
        private readonly SpanCopy _copy;
        private VBuffer<TSource> _buffer;
        private TSource[] _dense = [];
        private TSource _value;
        private TTarget[] _batch = [];

        public delegate void SpanCopy(ReadOnlySpan<TSource> source, Span<TTarget> destination);

        public Reader(DataViewRowCursor cursor, DataViewSchema.Column column, ModelInputInfo input, SpanCopy copy) : base(column, input)
        {
            if (column.Type is VectorDataViewType) _vector = cursor.GetGetter<VBuffer<TSource>>(column);
            else _scalar = cursor.GetGetter<TSource>(column);
            _copy = copy;
        }

        public override void ReadRow(int row, int capacity, long firstRow)
        {
            ReadOnlySpan<TSource> values;
            if (_vector is not null)
            {
                _vector(ref _buffer);
                if (_buffer.IsDense) values = _buffer.GetValues();
                else
                {
                    // Sparse rows are densified into a scratch array kept for the next row.
                    if (_dense.Length < _buffer.Length) _dense = new TSource[_buffer.Length];
                    _buffer.CopyTo(_dense.AsSpan(0, _buffer.Length));
                    values = _dense.AsSpan(0, _buffer.Length);
                }
            }
            else
            {
                _scalar!(ref _value);
                values = new ReadOnlySpan<TSource>(in _value);
            }
            CheckLength(values.Length, row, firstRow);
            if (row == 0) _batch = new TTarget[checked(capacity * values.Length)];
            _copy(values, _batch.AsSpan(row * values.Length, values.Length));
        }

        public override NamedTensor TakeBatch(int rows)
        {
            var data = _batch.Length == rows * RowLength ? _batch : _batch[..(rows * RowLength)];
            _batch = [];
            var shape = Shape(rows);
            return data is float[] f ? new NamedTensor(f, shape) : new NamedTensor((long[])(object)data, shape);
        }
    }

    /// <summary>Row ids "row#i", made when read rather than per row.</summary>
    private sealed class RowIds(long first, int count) : IReadOnlyList<string>
    {
        public string this[int index] => (uint)index < (uint)count
            ? "row#" + (first + index).ToString(CultureInfo.InvariantCulture)
            : throw new ArgumentOutOfRangeException(nameof(index));

        public int Count => count;

        public IEnumerator<string> GetEnumerator()
        {
            for (int i = 0; i < count; i++) yield return this[i];
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
