using System.Security.Cryptography;
using MLNetCompress.Data;
using MLNetCompress.Runtime;

namespace MLNetCompress.ML.Distillation;

/// <summary>The teachers of a soft-label run: one <see cref="ModelRunner"/> (one InferenceSession) per teacher,
/// all fetching the same output, turned into one distribution per row.</summary>
internal sealed class TeacherEnsemble : IDisposable
{
    private readonly ModelRunner[] _runners;
    private float[] _accumulator = [];
    private float[] _probabilities = [];
    private readonly float[] _scratch;

    private TeacherEnsemble(ModelRunner[] runners, string outputName, int classes, IReadOnlyList<string> names, IReadOnlyList<string> sha256)
    {
        _runners = runners;
        OutputName = outputName;
        Classes = classes;
        Names = names;
        Sha256 = sha256;
        _scratch = new float[2 * classes];
    }

    /// <summary>The output read from every teacher.</summary>
    public string OutputName { get; }

    /// <summary>Number of classes C.</summary>
    public int Classes { get; }

    /// <summary>The teachers' file names.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>SHA-256 (hex) of each teacher file.</summary>
    public IReadOnlyList<string> Sha256 { get; }

    /// <summary>The inputs the teachers take (the first teacher's; all must agree).</summary>
    public IReadOnlyList<ModelInputInfo> Inputs => _runners[0].Inputs;

    /// <summary>True when the teachers run on CUDA.</summary>
    public bool OnGpu => _runners.All(r => r.OnGpu);

    /// <summary>The batch size the teachers fix, or 0 when it is free.</summary>
    public int FixedBatch => Inputs.Count > 0 && Inputs[0].HasFixedBatch ? checked((int)Inputs[0].Dims[0]) : 0;

    /// <summary>Loads the teachers and finds the output and the class count (from the output's shape; when the
    /// shape does not say, <see cref="WithClassesFrom"/> runs a probe).</summary>
    /// <exception cref="SoftLabelException">Teachers that disagree, a missing output, an output that is not rows × C.</exception>
    public static TeacherEnsemble Load(SoftLabelOptions options, Action<string>? log)
    {
        // Set up ONNX Runtime's shared thread pool before the first session, as every command of the tool does.
        if (options.Runtime.UseGlobalThreadPool) OrtSessionFactory.EnsureGlobalThreadPool(options.Runtime.IntraOpThreads, log);
        var runners = new List<ModelRunner>();
        try
        {
            foreach (var path in options.Teachers)
            {
                if (!File.Exists(path)) throw new FileNotFoundException($"teacher model '{path}' does not exist", path);
                runners.Add(ModelRunner.Load(path, options.Runtime, log));
            }
            var first = runners[0];
            var outputName = options.OutputName ?? first.Session.OutputMetadata.Keys.First();
            var shapes = new List<int?>();
            for (var t = 0; t < runners.Count; t++)
            {
                var session = runners[t].Session;
                if (!session.OutputMetadata.TryGetValue(outputName, out var meta))
                    throw new SoftLabelException($"teacher '{Path.GetFileName(options.Teachers[t])}' has no output '{outputName}'; it has {string.Join(", ", session.OutputMetadata.Keys.Select(k => $"'{k}'"))} (choose with --output-name)");
                if (!meta.IsTensor) throw new SoftLabelException($"output '{outputName}' of teacher '{Path.GetFileName(options.Teachers[t])}' is a {meta.OnnxValueType}, not a tensor of logits");
                shapes.Add(ClassesOf(meta.Dimensions));
                if (t > 0) CheckSameInputs(first, runners[t], options.Teachers[t]);
            }
            var known = shapes.Where(s => s is not null).Distinct().ToList();
            if (known.Count > 1)
                throw new SoftLabelException($"the teachers give different class counts ({string.Join(", ", known)}) in output '{outputName}'; an ensemble needs teachers over the same classes");
            for (var t = 0; t < runners.Count; t++) runners[t] = runners[t].WithOutputs([outputName]);
            var names = options.Teachers.Select(Path.GetFileName).ToArray();
            var sha = options.Teachers.Select(HashFile).ToArray();
            // A shape that leaves C open (e.g. [N, num_classes]) is settled by the first batch.
            return new TeacherEnsemble(runners.ToArray(), outputName, known.Count == 1 ? known[0]!.Value : 0, names!, sha);
        }
        catch
        {
            foreach (var r in runners) r.Dispose();
            throw;
        }
    }

    /// <summary>A copy of this ensemble with the class count found by running the teachers on <paramref name="probe"/>.</summary>
    public TeacherEnsemble WithClassesFrom(IReadOnlyDictionary<string, NamedTensor> probe)
    {
        if (Classes > 0) return this;
        int? classes = null;
        foreach (var runner in _runners)
        {
            var output = runner.Run(probe)[OutputName];
            if (classes is not null && classes != output.RowLength)
                throw new SoftLabelException($"the teachers give different class counts ({classes}, {output.RowLength}) in output '{OutputName}'");
            classes = output.RowLength;
        }
        if (classes is not > 0) throw new SoftLabelException($"output '{OutputName}' has no values per row; it is no class distribution");
        return new TeacherEnsemble(_runners, OutputName, classes.Value, Names, Sha256);
    }

    /// <summary>Runs every teacher on <paramref name="inputs"/> and writes the combined soft labels of the first
    /// <paramref name="rows"/> rows into <paramref name="block"/> (dense or top-k).</summary>
    public void Label(IReadOnlyDictionary<string, NamedTensor> inputs, int rows, double temperature, SoftLabelCombine combine, SoftLabelBlock block)
    {
        var n = rows * Classes;
        var single = _runners.Length == 1;
        Span<float> target = block.Dense is not null ? block.Dense.AsSpan(0, n) : Buffer(ref _probabilities, n);
        if (!single) target.Clear();
        foreach (var runner in _runners)
        {
            var output = runner.Run(ShapedFor(runner, inputs))[OutputName];
            if (output.RowLength != Classes || output.Rows < rows)
                throw new SoftLabelException($"output '{OutputName}' gave {output.Rows} rows of {output.RowLength} values, expected {rows} rows of {Classes} classes; the output must be [N, C] logits or log-probabilities");
            var logits = output.Data[..n];
            if (single) SoftLabelMath.SoftmaxRows(logits, Classes, temperature, target);
            else SoftLabelMath.AccumulateTeacher(logits, Classes, temperature, combine, target, _scratch);
        }
        if (!single) SoftLabelMath.FinishEnsemble(target, Classes, _runners.Length, combine);
        if (block.TopK is null) return;
        for (var r = 0; r < rows; r++)
            SoftLabelMath.TopK(target.Slice(r * Classes, Classes), block.IndexRow(r), block.ValueRow(r));
    }

    // Teachers of an ensemble may want the same rows in other shapes ([N,784] and [N,1,28,28]): the data is
    // shaped to the first teacher, and viewed (not copied) in another teacher's fixed row shape when the sizes agree.
    private static IReadOnlyDictionary<string, NamedTensor> ShapedFor(ModelRunner runner, IReadOnlyDictionary<string, NamedTensor> inputs)
    {
        Dictionary<string, NamedTensor>? reshaped = null;
        foreach (var input in runner.Inputs)
        {
            if (!inputs.TryGetValue(input.Name, out var tensor) || input.Rank == 0 || input.Rank == tensor.Shape.Count && input.AcceptsRows(tensor.Shape.Skip(1).ToArray()))
                continue;
            var rowShape = input.Dims.Skip(1).ToArray();
            var rowLength = tensor.RowCount == 0 ? 0 : tensor.Data.LongLength / tensor.RowCount;
            if (rowShape.Any(d => d < 0) || rowShape.Aggregate(1L, (a, d) => a * d) != rowLength) continue;
            var shape = new long[rowShape.Length + 1];
            shape[0] = tensor.RowCount;
            rowShape.CopyTo(shape, 1);
            reshaped ??= new Dictionary<string, NamedTensor>(inputs);
            reshaped[input.Name] = tensor.Data is float[] f ? new NamedTensor(f, shape) : new NamedTensor((long[])tensor.Data, shape);
        }
        return reshaped ?? inputs;
    }

    private static Span<float> Buffer(ref float[] buffer, int length)
    {
        if (buffer.Length < length) buffer = new float[length];
        return buffer.AsSpan(0, length);
    }

    private static int? ClassesOf(int[] dims)
    {
        if (dims.Length < 2) return null;
        long c = 1;
        for (var i = 1; i < dims.Length; i++)
        {
            if (dims[i] <= 0) return null;
            c *= dims[i];
        }
        return checked((int)c);
    }

    private static void CheckSameInputs(ModelRunner first, ModelRunner other, string path)
    {
        var a = first.Inputs;
        var b = other.Inputs;
        var same = a.Count == b.Count && a.Zip(b).All(p => p.First.Name == p.Second.Name && p.First.ElementType == p.Second.ElementType);
        if (!same)
            throw new SoftLabelException($"teacher '{Path.GetFileName(path)}' takes inputs {Describe(b)} but the first teacher takes {Describe(a)}; an ensemble's teachers must take the same inputs");
        static string Describe(IReadOnlyList<ModelInputInfo> inputs) => string.Join(", ", inputs.Select(i => $"'{i.Name}' {i.ElementType}"));
    }

    private static string HashFile(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var r in _runners) r.Dispose();
    }
}
