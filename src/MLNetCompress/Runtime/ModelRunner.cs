using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using MLNetCompress.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Runtime;

/// <summary>One loaded model that runs batches of <see cref="NamedTensor"/> inputs and hands back its tensor
/// outputs as float32 (converted from the output's own numeric type). Input arrays are pinned, not copied;
/// output buffers are reused from run to run, so a result is valid until the next <see cref="Run(DataBatch)"/>.
/// Not thread-safe: one runner per thread.</summary>
public sealed class ModelRunner : IDisposable
{
    private bool _ownsSession;
    private readonly string[] _inputNames;
    private readonly TensorElementType[] _inputTypes;
    private readonly OrtValue[] _inputValues;
    private readonly string[] _outputNames;
    private readonly RunOutputs _outputs;
    private readonly RunOptions _runOptions = new();
    private bool _disposed;

    /// <summary>Wraps a session.</summary>
    /// <param name="session">The session to run.</param>
    /// <param name="ownsSession">Dispose the session with the runner.</param>
    /// <param name="outputNames">Outputs to fetch, or null for every tensor output of a numeric type.</param>
    /// <param name="onGpu">Whether the session runs on CUDA (reported only).</param>
    public ModelRunner(InferenceSession session, bool ownsSession = true, IReadOnlyList<string>? outputNames = null, bool onGpu = false)
    {
        ArgumentNullException.ThrowIfNull(session);
        Session = session;
        _ownsSession = ownsSession;
        OnGpu = onGpu;
        Inputs = ModelInputInfo.FromMetadata(session.InputMetadata);
        _inputNames = Inputs.Select(i => i.Name).ToArray();
        _inputTypes = Inputs.Select(i => i.ElementType).ToArray();
        _inputValues = new OrtValue[_inputNames.Length];

        if (outputNames is null)
        {
            _outputNames = session.OutputMetadata.Where(kv => kv.Value.IsTensor && IsNumeric(kv.Value.ElementDataType)).Select(kv => kv.Key).ToArray();
        }
        else
        {
            foreach (var name in outputNames)
                if (!session.OutputMetadata.ContainsKey(name))
                    throw new ArgumentException($"the model has no output '{name}'; it has {string.Join(", ", session.OutputMetadata.Keys.Select(k => $"'{k}'"))}", nameof(outputNames));
            _outputNames = outputNames.ToArray();
        }
        _outputs = new RunOutputs(_outputNames.Select(n => new OutputTensor(n)).ToArray());
    }

    /// <summary>Loads a model from bytes through <see cref="OrtSessionFactory"/>.</summary>
    /// <exception cref="OrtRuntimeException">The model does not load.</exception>
    public static ModelRunner Load(byte[] model, RuntimeOptions? options = null, Action<string>? log = null, IReadOnlyList<string>? outputNames = null)
    {
        var session = OrtSessionFactory.Create(model, options, log, out var gpu);
        return Wrap(session, outputNames, gpu);
    }

    /// <summary>Loads a model file through <see cref="OrtSessionFactory"/>.</summary>
    /// <exception cref="OrtRuntimeException">The model does not load.</exception>
    public static ModelRunner Load(string path, RuntimeOptions? options = null, Action<string>? log = null, IReadOnlyList<string>? outputNames = null)
    {
        var session = OrtSessionFactory.Create(path, options, log, out var gpu);
        return Wrap(session, outputNames, gpu);
    }

    /// <summary>The session run.</summary>
    public InferenceSession Session { get; }

    /// <summary>The model's inputs.</summary>
    public IReadOnlyList<ModelInputInfo> Inputs { get; }

    /// <summary>The outputs fetched, in the order of <see cref="RunOutputs.Outputs"/>.</summary>
    public IReadOnlyList<string> OutputNames => _outputNames;

    /// <summary>True when the session runs on CUDA.</summary>
    public bool OnGpu { get; }

    /// <summary>Runs a batch.</summary>
    public RunOutputs Run(DataBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return Run(batch.Inputs);
    }

    /// <summary>Runs the model on named inputs; every model input must be given, with its element type.</summary>
    /// <returns>The outputs, valid until the next run (buffers are reused).</returns>
    public RunOutputs Run(IReadOnlyDictionary<string, NamedTensor> inputs)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Count != _inputNames.Length)
        {
            var extra = inputs.Keys.FirstOrDefault(k => Array.IndexOf(_inputNames, k) < 0);
            if (extra is not null) throw new ArgumentException($"the model has no input '{extra}'", nameof(inputs));
        }
        try
        {
            for (var i = 0; i < _inputNames.Length; i++)
            {
                if (!inputs.TryGetValue(_inputNames[i], out var tensor))
                    throw new ArgumentException($"no tensor for model input '{_inputNames[i]}'", nameof(inputs));
                if (tensor.ElementType != _inputTypes[i])
                    throw new ArgumentException($"model input '{_inputNames[i]}' wants {_inputTypes[i]} but the tensor is {tensor.ElementType}", nameof(inputs));
                // Pins the managed array for the run: no copy of the input data.
                _inputValues[i] = tensor.Data is float[] f
                    ? OrtValue.CreateTensorValueFromMemory(f, tensor.ShapeArray)
                    : OrtValue.CreateTensorValueFromMemory((long[])tensor.Data, tensor.ShapeArray);
            }

            var started = Stopwatch.GetTimestamp();
            using var results = Session.Run(_runOptions, _inputNames, _inputValues, _outputNames);
            _outputs.ElapsedMilliseconds = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var k = 0;
            foreach (var value in results) _outputs.Outputs[k++].CopyFrom(value);
            return _outputs;
        }
        finally
        {
            for (var i = 0; i < _inputValues.Length; i++)
            {
                _inputValues[i]?.Dispose();
                _inputValues[i] = null!;
            }
        }
    }

    /// <summary>A runner over the same session fetching <paramref name="outputNames"/>; it takes over this runner's
    /// ownership of the session, and this runner is disposed.</summary>
    internal ModelRunner WithOutputs(IReadOnlyList<string> outputNames)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var next = new ModelRunner(Session, _ownsSession, outputNames, OnGpu);
        _ownsSession = false;
        Dispose();
        return next;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _runOptions.Dispose();
        if (_ownsSession) Session.Dispose();
    }

    private static ModelRunner Wrap(InferenceSession session, IReadOnlyList<string>? outputNames, bool gpu)
    {
        try
        {
            return new ModelRunner(session, ownsSession: true, outputNames, gpu);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private static bool IsNumeric(TensorElementType t) => t is TensorElementType.Float or TensorElementType.Double
        or TensorElementType.Float16 or TensorElementType.BFloat16 or TensorElementType.Int64 or TensorElementType.Int32
        or TensorElementType.Int16 or TensorElementType.Int8 or TensorElementType.UInt8 or TensorElementType.UInt16
        or TensorElementType.UInt32 or TensorElementType.UInt64 or TensorElementType.Bool;
}

/// <summary>The outputs of one run, in <see cref="ModelRunner.OutputNames"/> order; the same object (and buffers)
/// is reused by the next run of the same runner.</summary>
public sealed class RunOutputs
{
    internal RunOutputs(OutputTensor[] outputs) => Outputs = outputs;

    /// <summary>The outputs.</summary>
    public OutputTensor[] Outputs { get; }

    /// <summary>Milliseconds spent in ONNX Runtime's Run for this batch.</summary>
    public double ElapsedMilliseconds { get; internal set; }

    /// <summary>The output called <paramref name="name"/>.</summary>
    public OutputTensor this[string name] =>
        Array.Find(Outputs, o => o.Name == name) ?? throw new KeyNotFoundException($"no output '{name}'");
}

/// <summary>One output of a run as float32, rows first. The buffer grows as needed and is reused.</summary>
public sealed class OutputTensor
{
    private float[] _buffer = [];
    private long[] _shape = [];
    private int _length;

    internal OutputTensor(string name) => Name = name;

    /// <summary>The output's name.</summary>
    public string Name { get; }

    /// <summary>The element type the model produced (converted to float32 here).</summary>
    public TensorElementType SourceType { get; private set; }

    /// <summary>The output's shape in this run.</summary>
    public IReadOnlyList<long> Shape => _shape;

    /// <summary>All values, row-major.</summary>
    public ReadOnlySpan<float> Data => _buffer.AsSpan(0, _length);

    /// <summary>Rows: the first dim (1 for a scalar output).</summary>
    public int Rows => _shape.Length == 0 ? 1 : checked((int)_shape[0]);

    /// <summary>Values per row.</summary>
    public int RowLength => Rows == 0 ? 0 : _length / Rows;

    /// <summary>The values of row <paramref name="row"/>.</summary>
    public ReadOnlySpan<float> Row(int row) => _buffer.AsSpan(row * RowLength, RowLength);

    internal void CopyFrom(OrtValue value)
    {
        var info = value.GetTensorTypeAndShape();
        var count = checked((int)info.ElementCount);
        SourceType = info.ElementDataType;
        var dims = info.Shape;
        if (_shape.Length != dims.Length) _shape = new long[dims.Length];
        dims.CopyTo(_shape, 0);
        if (_buffer.Length < count) _buffer = new float[Math.Max(count, _buffer.Length * 2)];
        _length = count;
        var dst = _buffer.AsSpan(0, count);
        switch (SourceType)
        {
            case TensorElementType.Float: value.GetTensorDataAsSpan<float>().CopyTo(dst); break;
            case TensorElementType.Double: TensorPrimitives.ConvertTruncating(value.GetTensorDataAsSpan<double>(), dst); break;
            // ORT's Float16 holds the IEEE half bits, as System.Half does.
            case TensorElementType.Float16: TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<Float16, Half>(value.GetTensorDataAsSpan<Float16>()), dst); break;
            case TensorElementType.BFloat16:
                var bf = MemoryMarshal.Cast<BFloat16, ushort>(value.GetTensorDataAsSpan<BFloat16>());
                var bits = MemoryMarshal.Cast<float, uint>(dst);
                for (var i = 0; i < count; i++) bits[i] = (uint)bf[i] << 16;
                break;
            case TensorElementType.Int64: TensorPrimitives.ConvertTruncating(value.GetTensorDataAsSpan<long>(), dst); break;
            case TensorElementType.Int32: TensorPrimitives.ConvertTruncating(value.GetTensorDataAsSpan<int>(), dst); break;
            case TensorElementType.Int16: TensorPrimitives.ConvertTruncating(value.GetTensorDataAsSpan<short>(), dst); break;
            case TensorElementType.Int8: TensorPrimitives.ConvertTruncating(value.GetTensorDataAsSpan<sbyte>(), dst); break;
            case TensorElementType.UInt8: TensorPrimitives.ConvertTruncating(value.GetTensorDataAsSpan<byte>(), dst); break;
            case TensorElementType.Bool: TensorPrimitives.ConvertTruncating(value.GetTensorDataAsSpan<byte>(), dst); break;
            case TensorElementType.UInt16: TensorPrimitives.ConvertTruncating(value.GetTensorDataAsSpan<ushort>(), dst); break;
            case TensorElementType.UInt32: TensorPrimitives.ConvertTruncating(value.GetTensorDataAsSpan<uint>(), dst); break;
            case TensorElementType.UInt64: TensorPrimitives.ConvertTruncating(value.GetTensorDataAsSpan<ulong>(), dst); break;
            default: throw new NotSupportedException($"output '{Name}' has element type {SourceType}, which has no float32 view");
        }
    }
}
