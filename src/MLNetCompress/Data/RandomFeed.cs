using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Data;

/// <summary>Deterministic random rows shaped to the model, for smoke tests and verification probes:
/// float32 inputs get uniform [0,1) values; int64 inputs get small valid ids in [0,10), except inputs named
/// like a mask (all 1) or token types / segments (all 0). A free first dim is the batch; other free dims
/// become 16 (a sequence length). Row r of input k depends only on (seed, k, r), not on the batch size.</summary>
public sealed class RandomFeed : DataFeed
{
    /// <summary>Length used for free dims after the first.</summary>
    public const int FreeDimLength = 16;

    private readonly long[][] _rowShapes;
    private readonly int[] _rowLengths;
    private readonly long _rows;
    private readonly int _seed;

    /// <summary>Creates the feed for <paramref name="inputs"/>.</summary>
    /// <param name="inputs">The model's inputs; each must be float32 or int64.</param>
    /// <param name="rows">Rows in all.</param>
    /// <param name="seed">Seed: the same seed gives the same rows.</param>
    public RandomFeed(IReadOnlyList<ModelInputInfo> inputs, long rows = 32, int seed = 1)
        : base(inputs)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        if (inputs.Count == 0) throw new DataSpecException("random needs a model with at least one input");
        _rows = rows;
        _seed = seed;
        _rowShapes = new long[inputs.Count][];
        _rowLengths = new int[inputs.Count];
        for (var k = 0; k < inputs.Count; k++)
        {
            var input = inputs[k];
            if (input.ElementType is not (TensorElementType.Float or TensorElementType.Int64))
                throw new DataSpecException($"random gives float32 or int64 but model input '{input.Name}' wants {input.ElementType}");
            if (input.Rank == 0)
                throw new DataSpecException($"random needs a shape but model input '{input.Name}' states none");
            var shape = new long[input.Rank - 1];
            for (var i = 0; i < shape.Length; i++) shape[i] = input.Dims[i + 1] >= 0 ? input.Dims[i + 1] : FreeDimLength;
            _rowShapes[k] = shape;
            long n = 1;
            foreach (var d in shape) n *= d;
            _rowLengths[k] = checked((int)n);
        }
    }

    /// <inheritdoc />
    public override long RowCount => _rows;

    /// <inheritdoc />
    public override bool HasLabels => false;

    /// <inheritdoc />
    public override string Description => $"random (seed {_seed}), {_rows} rows";

    /// <inheritdoc />
    protected override DataBatch CreateBatch(long start, int count)
    {
        var inputs = new Dictionary<string, NamedTensor>(Inputs.Count);
        for (var k = 0; k < Inputs.Count; k++)
        {
            var input = Inputs[k];
            var len = _rowLengths[k];
            var shape = BatchShape(count, _rowShapes[k]);
            if (input.ElementType == TensorElementType.Float)
            {
                var data = new float[(long)count * len];
                for (var r = 0; r < count; r++)
                {
                    var rng = new SplitMix64(_seed, k, start + r);
                    var row = data.AsSpan(r * len, len);
                    for (var i = 0; i < row.Length; i++) row[i] = rng.NextFloat();
                }
                inputs[input.Name] = new NamedTensor(data, shape);
            }
            else
            {
                var data = new long[(long)count * len];
                var name = input.Name;
                if (name.Contains("mask", StringComparison.OrdinalIgnoreCase))
                    data.AsSpan().Fill(1);
                else if (!name.Contains("type", StringComparison.OrdinalIgnoreCase) && !name.Contains("segment", StringComparison.OrdinalIgnoreCase))
                {
                    for (var r = 0; r < count; r++)
                    {
                        var rng = new SplitMix64(_seed, k, start + r);
                        var row = data.AsSpan(r * len, len);
                        for (var i = 0; i < row.Length; i++) row[i] = rng.NextBelow(10);
                    }
                }
                inputs[name] = new NamedTensor(data, shape);
            }
        }
        return new DataBatch(inputs, count, start, RowIds("random", start, count));
    }

    // SplitMix64: tiny, fast and well mixed; seeded per (seed, input, row) so rows do not depend on batching.
    private struct SplitMix64
    {
        private ulong _state;

        public SplitMix64(int seed, int input, long row) =>
            _state = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)input * 0xD1B54A32D192ED03UL ^ (ulong)row * 0x94D049BB133111EBUL;

        private ulong Next()
        {
            var z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        public float NextFloat() => (Next() >> 40) * (1f / (1 << 24));

        public long NextBelow(int bound) => (long)((Next() >> 33) % (ulong)bound);
    }
}
