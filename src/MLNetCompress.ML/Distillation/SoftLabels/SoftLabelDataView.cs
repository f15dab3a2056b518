using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetCompress.ML.Distillation;

/// <summary>An ML.NET data view over soft-label blocks: each cursor opens the source again and streams its blocks.
/// With <c>densify</c> the view shows the loader's columns (Id, Label, Features, dense SoftLabel) whatever form the
/// blocks have; without it, the blocks' own form (what the binary writer saves).</summary>
internal sealed class SoftLabelDataView : IDataView
{
    private readonly Func<IEnumerable<SoftLabelBlock>> _open;
    private readonly SoftLabelInfo _info;
    private readonly bool _densify;
    private readonly bool _singlePass;
    private int _cursors;

    // Single pass: ML.NET's binary saver first samples some rows with one cursor to size its blocks, then reads
    // everything with a second. The blocks the first cursor took are kept and replayed to the second.
    private IEnumerator<SoftLabelBlock>? _shared;
    private readonly List<SoftLabelBlock> _replay = [];

    /// <summary>Creates the view.</summary>
    /// <param name="open">Opens the blocks from the start.</param>
    /// <param name="info">The layout (and the row count, when <paramref name="singlePass"/> is false).</param>
    /// <param name="densify">Show SoftLabel as a dense vector of length C instead of the blocks' own form.</param>
    /// <param name="singlePass">The source can be read only once (a generator feeding a writer).</param>
    public SoftLabelDataView(Func<IEnumerable<SoftLabelBlock>> open, SoftLabelInfo info, bool densify, bool singlePass = false)
    {
        _open = open;
        _info = info;
        _densify = densify;
        _singlePass = singlePass;
        Schema = BuildSchema(info, densify);
    }

    /// <inheritdoc />
    public bool CanShuffle => false;

    /// <inheritdoc />
    public DataViewSchema Schema { get; }

    /// <inheritdoc />
    public long? GetRowCount() => _singlePass ? null : _info.Rows;

    /// <inheritdoc />
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        if (!_singlePass) return new Cursor(this, columnsNeeded, _open);
        var n = Interlocked.Increment(ref _cursors);
        if (n > 2) throw new InvalidOperationException("this soft-label stream can be read by a sampling cursor and one full cursor only");
        _shared ??= _open().GetEnumerator();
        return new Cursor(this, columnsNeeded, () => Shared(record: n == 1));
    }

    private IEnumerable<SoftLabelBlock> Shared(bool record)
    {
        if (!record)
        {
            foreach (var b in _replay) yield return b;
            _replay.Clear();
        }
        while (_shared!.MoveNext())
        {
            if (record) _replay.Add(_shared.Current);
            yield return _shared.Current;
        }
    }

    /// <inheritdoc />
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private static DataViewSchema BuildSchema(SoftLabelInfo info, bool densify)
    {
        var b = new DataViewSchema.Builder();
        b.AddColumn(SoftLabelFile.IdColumn, TextDataViewType.Instance);
        b.AddColumn(SoftLabelFile.LabelColumn, NumberDataViewType.Int32);
        if (info.FeatureLength is int f) b.AddColumn(SoftLabelFile.FeaturesColumn, new VectorDataViewType(NumberDataViewType.Single, f));
        if (densify || info.TopK is null)
        {
            b.AddColumn(SoftLabelFile.SoftLabelColumn, new VectorDataViewType(NumberDataViewType.Single, info.Classes));
        }
        else
        {
            b.AddColumn(SoftLabelFile.IndicesColumn, new VectorDataViewType(NumberDataViewType.Int32, info.TopK.Value));
            b.AddColumn(SoftLabelFile.ValuesColumn, new VectorDataViewType(NumberDataViewType.Single, info.TopK.Value));
        }
        return b.ToSchema();
    }

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly SoftLabelDataView _parent;
        private readonly Func<IEnumerable<SoftLabelBlock>> _open;
        private readonly bool[] _active;
        private IEnumerator<SoftLabelBlock>? _blocks;
        private SoftLabelBlock? _block;
        private int _row = -1;
        private long _position = -1;

        public Cursor(SoftLabelDataView parent, IEnumerable<DataViewSchema.Column> columnsNeeded, Func<IEnumerable<SoftLabelBlock>> open)
        {
            _parent = parent;
            _open = open;
            _active = new bool[parent.Schema.Count];
            foreach (var c in columnsNeeded) _active[c.Index] = true;
        }

        public override DataViewSchema Schema => _parent.Schema;

        public override long Position => _position;

        public override long Batch => 0;

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override bool MoveNext()
        {
            _blocks ??= _open().GetEnumerator();
            while (_block is null || ++_row >= _block.Rows)
            {
                if (!_blocks.MoveNext())
                {
                    _block = null;
                    return false;
                }
                _block = _blocks.Current;
                _row = -1;
            }
            _position++;
            return true;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_active[column.Index]) throw new InvalidOperationException($"column '{column.Name}' is not active in this cursor");
            Delegate getter = column.Name switch
            {
                SoftLabelFile.IdColumn => (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> v) => v = Current.Ids[_row].AsMemory()),
                SoftLabelFile.LabelColumn => (ValueGetter<int>)((ref int v) => v = Current.Labels[_row]),
                SoftLabelFile.FeaturesColumn => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => Fill(ref v, Current.FeatureRow(_row))),
                SoftLabelFile.SoftLabelColumn => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) =>
                {
                    var editor = VBufferEditor.Create(ref v, Current.Classes);
                    Current.CopyDenseRow(_row, editor.Values);
                    v = editor.Commit();
                }),
                SoftLabelFile.IndicesColumn => (ValueGetter<VBuffer<int>>)((ref VBuffer<int> v) => Fill(ref v, Current.IndexRow(_row))),
                SoftLabelFile.ValuesColumn => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => Fill(ref v, Current.ValueRow(_row))),
                _ => throw new ArgumentOutOfRangeException(nameof(column), $"no column '{column.Name}'"),
            };
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"column '{column.Name}' is {column.Type}, not {typeof(TValue).Name}");
        }

        private SoftLabelBlock Current => _block ?? throw new InvalidOperationException("the cursor is not on a row");

        private static void Fill<T>(ref VBuffer<T> value, ReadOnlySpan<T> source)
        {
            var editor = VBufferEditor.Create(ref value, source.Length);
            source.CopyTo(editor.Values);
            value = editor.Commit();
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _blocks?.Dispose();
                if (_parent._singlePass && _parent._cursors >= 2) _parent._shared?.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
