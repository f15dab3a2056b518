using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Runtime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Pruning;

/// <summary>How <see cref="SensitivityAllocation"/> measures each layer: the grid of sparsities, the calibration rows and the runtime.</summary>
public sealed record SensitivityOptions
{
    /// <summary>Sparsities measured per layer. They are spaced evenly in log density (1 − sparsity) from 0 up to
    /// <see cref="MaxSparsity"/>, so the steep end of each curve, where the choices are made, is sampled densely
    /// (8 points up to 0.98: 39, 62, 77, 86, 91, 95, 97, 98%).</summary>
    public int GridPoints { get; init; } = 8;

    /// <summary>The highest sparsity measured, and so the most any layer is given.</summary>
    public double MaxSparsity { get; init; } = 0.98;

    /// <summary>Calibration rows the damage is measured on (each candidate model runs over all of them).</summary>
    public int MaxRows { get; init; } = 256;

    /// <summary>Rows per batch.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Runtime of the candidate sessions.</summary>
    public RuntimeOptions Runtime { get; init; } = RuntimeOptions.Default;

    /// <summary>The sparsities measured, ascending: 1 − (1 − <see cref="MaxSparsity"/>)^(k/<see cref="GridPoints"/>), k = 1..GridPoints.</summary>
    public double[] Grid()
    {
        var grid = new double[GridPoints];
        for (int k = 1; k <= GridPoints; k++) grid[k - 1] = 1 - Math.Pow(1 - MaxSparsity, (double)k / GridPoints);
        return grid;
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (GridPoints is < 1 or > 64)
            throw new ArgumentException($"SensitivitySettings.GridPoints is {GridPoints}; it must be from 1 to 64.", nameof(GridPoints));
        if (!(MaxSparsity > 0 && MaxSparsity < 1))
            throw new ArgumentException($"SensitivitySettings.MaxSparsity is {MaxSparsity}; it must be in (0, 1).", nameof(MaxSparsity));
        if (MaxRows < 1) throw new ArgumentException($"SensitivitySettings.MaxRows is {MaxRows}; it must be 1 or more.", nameof(MaxRows));
        if (BatchSize < 1) throw new ArgumentException($"SensitivitySettings.BatchSize is {BatchSize}; it must be 1 or more.", nameof(BatchSize));
        ArgumentNullException.ThrowIfNull(Runtime, nameof(Runtime));
    }
}

/// <summary>One layer's measured damage: the model's output error when only this layer is pruned to each zero count.</summary>
public sealed class SensitivityCurve
{
    /// <summary>Creates a curve.</summary>
    /// <param name="name">The weight's name.</param>
    /// <param name="elements">Values in the weight.</param>
    /// <param name="zeros">Zero counts measured, strictly ascending; the first is the layer's starting point (the zeros it
    /// already has, or what an N:M pattern left).</param>
    /// <param name="damage">The damage at each zero count (relative output MSE; 0 for the unchanged model).</param>
    /// <exception cref="ArgumentException">The lists differ in length, are empty, or the counts are not ascending within [0, elements].</exception>
    public SensitivityCurve(string name, long elements, IReadOnlyList<long> zeros, IReadOnlyList<double> damage)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(zeros);
        ArgumentNullException.ThrowIfNull(damage);
        if (zeros.Count == 0 || zeros.Count != damage.Count)
            throw new ArgumentException($"curve '{name}': {zeros.Count} zero counts and {damage.Count} damages; give the same non-zero number.");
        for (int i = 0; i < zeros.Count; i++)
            if (zeros[i] < 0 || zeros[i] > elements || (i > 0 && zeros[i] <= zeros[i - 1]))
                throw new ArgumentException($"curve '{name}': zero counts must rise strictly within [0, {elements}].");
        Name = name;
        Elements = elements;
        Zeros = zeros.ToArray();
        Damage = damage.ToArray();
    }

    /// <summary>The weight's name.</summary>
    public string Name { get; }

    /// <summary>Values in the weight.</summary>
    public long Elements { get; }

    /// <summary>Zero counts measured, ascending.</summary>
    public IReadOnlyList<long> Zeros { get; }

    /// <summary>The measured damage at each of <see cref="Zeros"/>.</summary>
    public IReadOnlyList<double> Damage { get; }

    /// <summary>The damage at <paramref name="zeros"/>, interpolated linearly on the measured curve made non-decreasing
    /// (pruning more never counts as repairing).</summary>
    public double DamageAt(long zeros)
    {
        var d = Envelope();
        if (zeros <= Zeros[0]) return d[0];
        for (int i = 1; i < Zeros.Count; i++)
            if (zeros <= Zeros[i])
                return d[i - 1] + (d[i] - d[i - 1]) * (zeros - Zeros[i - 1]) / (Zeros[i] - Zeros[i - 1]);
        return d[^1];
    }

    /// <summary>The damages made non-decreasing and finite (a NaN or infinite measure counts as very large).</summary>
    internal double[] Envelope()
    {
        var d = new double[Damage.Count];
        for (int i = 0; i < d.Length; i++)
        {
            double v = double.IsFinite(Damage[i]) ? Damage[i] : 1e300;
            d[i] = i == 0 ? v : Math.Max(v, d[i - 1]);
        }
        return d;
    }

    /// <summary>One line: the name and the damage at each measured sparsity.</summary>
    public override string ToString() => $"{Name} ({Elements} weights): " + string.Join(", ",
        Zeros.Select((z, i) => string.Create(CultureInfo.InvariantCulture, $"{(double)z / Math.Max(1, Elements):0.0%} {Damage[i]:G3}")));
}

/// <summary>What the sensitivity measurement found: a curve per layer, and what it cost.</summary>
public sealed class SensitivityProfile
{
    internal SensitivityProfile(IReadOnlyList<SensitivityCurve> curves, long rows, int candidates, int sessions, TimeSpan elapsed)
    {
        Curves = curves;
        Rows = rows;
        Candidates = candidates;
        Sessions = sessions;
        Elapsed = elapsed;
    }

    /// <summary>One curve per allocated layer, in graph order.</summary>
    public IReadOnlyList<SensitivityCurve> Curves { get; }

    /// <summary>Calibration rows each candidate ran on.</summary>
    public long Rows { get; }

    /// <summary>Candidate models measured (one layer at one sparsity each).</summary>
    public int Candidates { get; }

    /// <summary>ONNX Runtime sessions created: one per layer whose weight can be fed as an input, else one per candidate.</summary>
    public int Sessions { get; }

    /// <summary>Time spent measuring and allocating.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>One line: layers, candidates, rows and time.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"sensitivity allocation: {Curves.Count} layers, {Candidates} candidates ({Sessions} sessions) on {Rows} calibration rows, {Elapsed.TotalSeconds:0.0} s");
}

/// <summary>
/// Sensitivity-based sparsity allocation. <see cref="Measure"/> prunes one layer at a time by magnitude to each sparsity
/// of a grid and records the damage to the model's outputs on calibration data (relative MSE against the unpruned model:
/// Σ‖y′ − y‖² / Σ‖y‖², averaged over the float outputs). Such damages add roughly when several layers are pruned, so
/// <see cref="Allocate"/> minimizes their sum for a given total of zeros.
/// </summary>
public static class SensitivityAllocation
{
    /// <summary>
    /// Per-layer zero counts that add up to exactly <paramref name="totalZeros"/> with the least summed damage, reading
    /// each curve as piecewise linear between its measured points. Each curve is replaced by its lower convex hull; the
    /// hull segments of all layers are then taken in order of damage per pruned weight (ties: layer order, then segment
    /// order) until the total is reached, the last one in part. That is optimal for the convexified curves, and
    /// deterministic. Layers whose damage rises fast get fewer zeros.
    /// </summary>
    /// <param name="curves">One curve per layer.</param>
    /// <param name="totalZeros">The zeros wanted over all layers, between the sum of the curves' first and last counts.</param>
    /// <returns>Zeros per layer, in <paramref name="curves"/> order.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The total cannot be reached within the measured ranges.</exception>
    public static long[] Allocate(IReadOnlyList<SensitivityCurve> curves, long totalZeros)
    {
        ArgumentNullException.ThrowIfNull(curves);
        long min = curves.Sum(c => c.Zeros[0]), max = curves.Sum(c => c.Zeros[^1]);
        if (totalZeros < min || totalZeros > max)
            throw new ArgumentOutOfRangeException(nameof(totalZeros), totalZeros,
                $"the layers hold between {min} and {max} zeros within the measured sparsities; {totalZeros} is outside that range.");
        var counts = curves.Select(c => c.Zeros[0]).ToArray();
        var segments = new List<(double Slope, int Layer, int Index, long Length)>();
        for (int l = 0; l < curves.Count; l++)
        {
            var hull = LowerHull(curves[l].Zeros, curves[l].Envelope());
            for (int j = 1; j < hull.Count; j++)
            {
                long length = hull[j].X - hull[j - 1].X;
                segments.Add(((hull[j].Y - hull[j - 1].Y) / length, l, j, length));
            }
        }
        segments.Sort((a, b) => a.Slope != b.Slope ? a.Slope.CompareTo(b.Slope) : a.Layer != b.Layer ? a.Layer.CompareTo(b.Layer) : a.Index.CompareTo(b.Index));
        long left = totalZeros - min;
        foreach (var s in segments)
        {
            if (left == 0) break;
            long take = Math.Min(left, s.Length);
            counts[s.Layer] += take;
            left -= take;
        }
        return counts;
    }

    // The lower convex hull of points with rising x (monotone chain); collinear middle points are dropped, so the
    // slopes rise strictly and a layer's segments are always taken in order.
    private static List<(long X, double Y)> LowerHull(IReadOnlyList<long> x, double[] y)
    {
        var hull = new List<(long X, double Y)>(x.Count);
        for (int i = 0; i < x.Count; i++)
        {
            while (hull.Count >= 2)
            {
                var (ax, ay) = hull[^2];
                var (bx, by) = hull[^1];
                // b lies on or above the line from a to the new point: it is not a hull vertex.
                if ((by - ay) * (x[i] - ax) >= (y[i] - ay) * (double)(bx - ax)) hull.RemoveAt(hull.Count - 1);
                else break;
            }
            hull.Add((x[i], y[i]));
        }
        return hull;
    }

    /// <summary>
    /// Measures each layer's curve: the layer alone pruned by magnitude (from its <c>Start</c> values) to every zero
    /// count of the grid above what it already has, the rest of the model unchanged. The calibration batches are read
    /// once and kept. A float main-graph initializer becomes a graph input of a per-layer copy of the model, so one
    /// ONNX Runtime session runs all of that layer's candidates (on big models creating sessions costs more than
    /// running a few hundred rows); any other weight is written into a copy per candidate, one session each.
    /// </summary>
    internal static SensitivityProfile Measure(ModelGraph graph, IReadOnlyList<(WeightSite Site, float[] Start)> layers, IDataFeed feed,
        SensitivityOptions options, PassContext context, string passName)
    {
        var clock = Stopwatch.StartNew();
        var batches = feed.Batches(options.BatchSize, options.MaxRows).ToList();
        long rows = batches.Sum(b => (long)b.RowCount);
        if (rows == 0) throw new InvalidOperationException($"the calibration data ({feed.Description}) gave no rows.");
        var grid = options.Grid();
        var work = graph.Clone();
        var scopes = work.Scopes.ToDictionary(s => s.Path, StringComparer.Ordinal);

        var reference = new Reference(work.ToBytes(), batches, options.Runtime);
        var plans = layers.Select(l => Targets(l.Start, grid, MagnitudeSelection.CountZeros(TensorData.ToFloatArray(l.Site.Tensor)))).ToList();
        int total = plans.Sum(p => p.Targets.Count + (p.MeasureStart ? 1 : 0)), done = 0;
        var curves = new List<SensitivityCurve>(layers.Count);
        int sessions = 0;
        for (int i = 0; i < layers.Count; i++)
        {
            var (site, start) = layers[i];
            var (startZeros, measureStart, targets) = plans[i];
            var zeros = new List<long> { startZeros };
            var damage = new List<double>();
            bool fed = CanFeed(graph, site);
            var scope = scopes[site.Scope.Path];
            using var runner = fed ? reference.Load(WeightAsInput(graph, site)) : null;
            if (fed) sessions++;
            try
            {
                double Candidate(float[] values)
                {
                    context.Cancellation.ThrowIfCancellationRequested();
                    context.Report(passName, "sensitivity", done, total);
                    double d;
                    if (runner is not null) d = reference.Damage(runner, batches, site.Name, new NamedTensor(values, site.Dims));
                    else
                    {
                        scope.ReplaceConstant(site.Name, LayerWeights.Encode(site, values));
                        using var own = reference.Load(work.ToBytes());
                        sessions++;
                        d = reference.Damage(own, batches, null, null);
                    }
                    done++;
                    return d;
                }
                // Unchanged values are the reference model itself; a pattern's zeros are measured like any other point.
                damage.Add(measureStart ? Candidate(start) : 0);
                var candidate = new float[start.Length];
                foreach (long k in targets)
                {
                    start.CopyTo(candidate, 0);
                    MagnitudePruningPass.PruneToCount(candidate, k);
                    zeros.Add(k);
                    damage.Add(Candidate(candidate));
                }
            }
            finally
            {
                if (!fed) scope.ReplaceConstant(site.Name, site.Tensor.Clone());
            }
            var curve = new SensitivityCurve(site.Name, start.LongLength, zeros, damage);
            context.Log?.Invoke($"sensitivity of {curve}");
            curves.Add(curve);
        }
        context.Report(passName, "sensitivity", total, total);
        return new SensitivityProfile(curves, rows, done, sessions, clock.Elapsed);
    }

    // A float32 initializer of the main graph can be fed to a session as an input instead of baked into the model.
    private static bool CanFeed(ModelGraph graph, WeightSite site) =>
        site.Scope.Path == graph.Main.Path && site.Kind == ConstantKind.Initializer && site.DataType == OnnxDataType.Float;

    // The model with the weight turned into a graph input of its type and shape (an IR 3 model's input entry included).
    private static byte[] WeightAsInput(ModelGraph graph, WeightSite site)
    {
        var copy = graph.Clone();
        copy.Main.RemoveInitializer(site.Name);
        var shape = new TensorShapeProto();
        foreach (long d in site.Dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        copy.Main.Proto.Input.Add(new ValueInfoProto
        {
            Name = site.Name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)OnnxDataType.Float, Shape = shape } },
        });
        return copy.ToBytes();
    }

    // The zero counts to measure for one layer: the grid's counts above those it starts with.
    private static (long StartZeros, bool MeasureStart, List<long> Targets) Targets(float[] start, double[] grid, long originalZeros)
    {
        long startZeros = MagnitudeSelection.CountZeros(start);
        var targets = new List<long>();
        long last = startZeros;
        foreach (double s in grid)
        {
            long k = (long)Math.Round(s * start.LongLength);
            if (k > last) targets.Add(last = k);
        }
        return (startZeros, startZeros != originalZeros, targets);
    }

    /// <summary>The unpruned model's float outputs on the calibration batches, and the damage of a candidate against them.</summary>
    private sealed class Reference
    {
        private readonly RuntimeOptions _runtime;
        private readonly string[] _outputs;
        private readonly float[][][] _values; // [batch][output] values
        private readonly double[] _squares;   // Σ y² per output over all batches

        public Reference(byte[] model, IReadOnlyList<DataBatch> batches, RuntimeOptions runtime)
        {
            _runtime = runtime;
            using (var probe = ModelRunner.Load(model, runtime))
                _outputs = probe.Session.OutputMetadata
                    .Where(kv => kv.Value.IsTensor && kv.Value.ElementDataType is TensorElementType.Float or TensorElementType.Double
                        or TensorElementType.Float16 or TensorElementType.BFloat16)
                    .Select(kv => kv.Key).ToArray();
            if (_outputs.Length == 0)
                throw new InvalidOperationException("the model has no float tensor output to measure the layers' damage on; use another allocation.");
            _squares = new double[_outputs.Length];
            _values = new float[batches.Count][][];
            using var runner = ModelRunner.Load(model, runtime, null, _outputs);
            for (int b = 0; b < batches.Count; b++)
            {
                var result = runner.Run(batches[b]);
                _values[b] = new float[_outputs.Length][];
                for (int o = 0; o < _outputs.Length; o++)
                {
                    var data = result.Outputs[o].Data;
                    _values[b][o] = data.ToArray();
                    _squares[o] += TensorPrimitives.SumOfSquares(data);
                }
            }
        }

        /// <summary>A session of a candidate model fetching the measured outputs.</summary>
        public ModelRunner Load(byte[] model) => ModelRunner.Load(model, _runtime, null, _outputs);

        /// <summary>Mean over the outputs of Σ‖y′ − y‖² / Σ‖y‖² over all batches, with <paramref name="weight"/> fed as
        /// input <paramref name="weightName"/> when given.</summary>
        public double Damage(ModelRunner runner, IReadOnlyList<DataBatch> batches, string? weightName, NamedTensor? weight)
        {
            var errors = new double[_outputs.Length];
            for (int b = 0; b < batches.Count; b++)
            {
                RunOutputs result;
                if (weight is null) result = runner.Run(batches[b]);
                else
                {
                    var inputs = new Dictionary<string, NamedTensor>(batches[b].Inputs, StringComparer.Ordinal) { [weightName!] = weight };
                    result = runner.Run(inputs);
                }
                for (int o = 0; o < _outputs.Length; o++)
                {
                    var y = result.Outputs[o].Data;
                    var want = _values[b][o];
                    if (y.Length != want.Length)
                        throw new InvalidOperationException($"output '{_outputs[o]}' has {y.Length} values with a layer pruned, {want.Length} without.");
                    double distance = TensorPrimitives.Distance(y, want);
                    errors[o] += distance * distance;
                }
            }
            double sum = 0;
            for (int o = 0; o < errors.Length; o++) sum += errors[o] / Math.Max(_squares[o], 1e-30);
            return sum / errors.Length;
        }
    }
}
