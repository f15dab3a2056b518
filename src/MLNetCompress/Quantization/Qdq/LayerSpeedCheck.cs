using System.Diagnostics;
using System.Globalization;
using MLNetCompress.Calibration;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Runtime;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>One quantized layer timed alone in ONNX Runtime on this CPU, float against int8.</summary>
/// <param name="Layer">The node's label.</param>
/// <param name="OpType">Conv, Gemm or MatMul.</param>
/// <param name="InputShape">The shape it was timed at (its input in the first calibration batch).</param>
/// <param name="FloatMs">The float layer (with the Relu after it, if the Relu folds into the int8 kernel).</param>
/// <param name="Int8Ms">The fused int8 kernel alone: quantized input in, quantized (or float) output out.</param>
/// <param name="QuantizeInputMs">A QuantizeLinear of its input: paid when the layer's input comes from float.</param>
/// <param name="DequantizeOutputMs">A DequantizeLinear of its output: paid when a float op reads it.</param>
/// <param name="EntersInt8">True when, in the final model, its input comes from float (a QuantizeLinear runs).</param>
/// <param name="LeavesInt8">True when, in the final model, a float op reads its output (a DequantizeLinear runs).</param>
/// <param name="SlowerAlone">True when, timed alone, int8 in place (with its conversions) was slower than float.</param>
/// <param name="KeptFloat">True when the layer stays float: the whole model timed faster with it float.</param>
public sealed record LayerSpeed(string Layer, string OpType, IReadOnlyList<long> InputShape, double FloatMs, double Int8Ms,
    double QuantizeInputMs, double DequantizeOutputMs, bool EntersInt8, bool LeavesInt8, bool SlowerAlone, bool KeptFloat)
{
    /// <summary>What int8 costs in place: the kernel plus the conversions its neighbours make it pay.</summary>
    public double Int8InPlaceMs => Int8Ms + (EntersInt8 ? QuantizeInputMs : 0) + (LeavesInt8 ? DequantizeOutputMs : 0);

    /// <summary>Float time over int8-in-place time (above 1: int8 is faster).</summary>
    public double Speedup => Int8InPlaceMs > 0 ? FloatMs / Int8InPlaceMs : double.NaN;

    /// <summary>One line for notes and reports.</summary>
    public override string ToString()
    {
        var c = CultureInfo.InvariantCulture;
        return $"{Layer} ({OpType}, input [{string.Join(",", InputShape)}]): float {FloatMs.ToString("0.000", c)} ms, int8 {Int8Ms.ToString("0.000", c)} ms" +
               (EntersInt8 ? $" + quantize {QuantizeInputMs.ToString("0.000", c)} ms" : "") +
               (LeavesInt8 ? $" + dequantize {DequantizeOutputMs.ToString("0.000", c)} ms" : "") +
               $": int8 {Speedup.ToString("0.00", c)}x as fast" +
               (KeptFloat ? ", kept float (faster on this CPU)" : SlowerAlone ? ", kept int8 (slower alone, but the whole model is faster with it int8)" : "");
    }
}

/// <summary>
/// Never slower: times each quantized layer alone in ONNX Runtime, float against its fused int8 kernel, at the shape it
/// sees in calibration, and keeps float the layers where int8 loses once the QuantizeLinear / DequantizeLinear its float
/// neighbours force on it are counted (tiny convs, one-channel inputs, layers whose conversions outweigh the kernel).
/// Dropping one layer can make its neighbours pay conversions, so the slowest is dropped first and the rest re-judged.
/// </summary>
/// <remarks>
/// Each timing is the fastest of interleaved runs (load from other processes only adds time). The decision holds for
/// the CPU it ran on: int8 kernels differ most between CPUs with and without VNNI, so a model meant for another CPU is
/// best quantized there, or with the check off (<see cref="QdqOptions.KeepFloatWhereSlower"/>).
/// </remarks>
internal static class LayerSpeedCheck
{
    /// <summary>The layers whose speed a whole-model check tries float, in order: at most this many.</summary>
    public const int MaxCandidates = 5;

    /// <summary>A layer whose int8 kernel is less than this much faster alone is worth trying float in the whole model.</summary>
    public const double DoubtfulSpeedup = 1.25;

    /// <summary>
    /// Times the compute layers of <paramref name="rules"/> alone and orders the ones worth trying float: first those
    /// where int8 in place loses (the worst first, the rest re-judged after each, since a float layer makes its neighbours
    /// pay conversions), then those that gain least, up to <see cref="MaxCandidates"/>.
    /// </summary>
    public static (IReadOnlyList<LayerSpeed> Layers, IReadOnlyList<string> TryFloat) Measure(GraphScope scope, ModelProto model,
        IReadOnlyDictionary<NodeProto, QdqNodeRule> rules, IReadOnlyDictionary<string, QdqActivation> activations,
        IReadOnlyDictionary<string, QdqWeight> weights, IReadOnlyDictionary<string, HistogramStatistics> stats, QdqOptions options,
        ICollection<string> notes, Action<int, int>? progress, CancellationToken cancellationToken)
    {
        var timed = new List<Timed>();
        var layers = rules.Where(kv => kv.Value.IsCompute).Select(kv => kv.Key).ToList();
        for (int i = 0; i < layers.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Invoke(i, layers.Count);
            try
            {
                if (Build(scope, model, layers[i], rules, activations, weights, stats, options) is { } micro)
                    timed.Add(Time(micro, options.CalibrationSettings.Runtime, options.SpeedSamples));
            }
            catch (Exception e) when (e is OrtRuntimeException or OnnxRuntimeException or InvalidOperationException or ArgumentException)
            {
                // A layer ONNX Runtime will not run alone (an unusual attribute, a shape it cannot infer) is not a reason
                // to refuse the model: it is not timed and stays int8.
                notes.Add($"{GraphScope.NodeLabel(layers[i])}: not timed alone ({OrtRuntimeException.OneLine(e)}); kept int8.");
            }
        }
        progress?.Invoke(layers.Count, layers.Count);

        var int8 = new HashSet<NodeProto>(timed.Select(t => t.Micro.Node), ReferenceEqualityComparer.Instance);
        var order = new List<Timed>();
        while (true)
        {
            Timed? worst = null;
            double worstGain = 0;
            foreach (var t in timed.Where(t => int8.Contains(t.Micro.Node)))
            {
                double gain = t.FloatMs - InPlace(t, scope, rules, int8);
                if (gain < worstGain) (worst, worstGain) = (t, gain);
            }
            if (worst is null) break;
            int8.Remove(worst.Micro.Node);
            order.Add(worst);
        }
        var slowerAlone = order.Select(t => t.Micro.Node).ToHashSet(ReferenceEqualityComparer.Instance);
        order.AddRange(timed.Where(t => !slowerAlone.Contains(t.Micro.Node))
            .Select(t => (t, Speedup: t.FloatMs / InPlace(t, scope, rules, int8)))
            .Where(x => x.Speedup < DoubtfulSpeedup).OrderBy(x => x.Speedup).Select(x => x.t));
        var all = new HashSet<NodeProto>(timed.Select(t => t.Micro.Node), ReferenceEqualityComparer.Instance);
        var speeds = timed.Select(t => new LayerSpeed(GraphScope.NodeLabel(t.Micro.Node), t.Micro.Node.OpType, t.Micro.InputShape, t.FloatMs, t.Int8Ms,
            t.QuantizeMs, t.DequantizeMs, Enters(t.Micro, scope, rules, all), Leaves(t.Micro, scope, rules, all),
            slowerAlone.Contains(t.Micro.Node), KeptFloat: false)).ToList();
        // Every layer float is the float model, not an answer of the int8 pass: at least one layer stays int8.
        return (speeds, order.Take(Math.Min(MaxCandidates, timed.Count - 1)).Select(t => GraphScope.NodeLabel(t.Micro.Node)).ToList());
    }

    /// <summary>
    /// The whole-model check: ONNX Runtime rewrites layouts around every int8/float border (NCHWc float convs, NHWC int8
    /// convs, pooling in either), so layers timed alone do not add up. Times the float model, every layer int8, and
    /// the models with the first 1, 2, … layers of <paramref name="tryFloat"/> float, interleaved on one calibration batch,
    /// and returns the fastest set of float layers (empty: all int8) with one line saying what was measured.
    /// </summary>
    public static (IReadOnlySet<string> KeepFloat, string Summary) ChooseByWholeModel(byte[] floatModel, IReadOnlyList<string> tryFloat,
        Func<IReadOnlySet<string>, byte[]> build, Data.DataBatch batch, RuntimeOptions runtime, int samples, CancellationToken cancellationToken)
    {
        var sets = new List<HashSet<string>>();
        var runners = new List<ModelRunner>();
        try
        {
            try
            {
                runners.Add(ModelRunner.Load(floatModel, runtime));
                runners[0].Run(batch);
            }
            catch (Exception e) when (e is OrtRuntimeException or OnnxRuntimeException)
            {
                return (new HashSet<string>(StringComparer.Ordinal), $"speed check: the float model does not run on one calibration batch " +
                        $"({OrtRuntimeException.OneLine(e)}); every layer int8 kept.");
            }
            var candidates = new List<HashSet<string>> { new(StringComparer.Ordinal) };
            for (int k = 1; k <= tryFloat.Count; k++) candidates.Add(tryFloat.Take(k).ToHashSet(StringComparer.Ordinal));
            foreach (var set in candidates)
            {
                cancellationToken.ThrowIfCancellationRequested();
                try
                {
                    var runner = ModelRunner.Load(build(set), runtime);
                    try
                    {
                        runner.Run(batch);
                    }
                    catch (OnnxRuntimeException)
                    {
                        runner.Dispose();
                        throw;
                    }
                    runners.Add(runner);
                    sets.Add(set);
                }
                // A candidate that does not build or run is not timed; the verification gate judges the one written.
                catch (Exception e) when (e is OrtRuntimeException or OnnxRuntimeException or InvalidOperationException)
                {
                }
            }
            if (sets.Count == 0 || sets[0].Count > 0)
                return (new HashSet<string>(StringComparer.Ordinal), "speed check: the all-int8 model does not run on one calibration batch; every layer int8 kept.");
            foreach (var r in runners) { r.Run(batch); r.Run(batch); }
            var best = Enumerable.Repeat(double.PositiveInfinity, runners.Count).ToArray();
            for (int round = 0; round < samples; round++)
                for (int k = 0; k < runners.Count; k++)
                {
                    int i = (k + round) % runners.Count;
                    best[i] = Math.Min(best[i], runners[i].Run(batch).ElapsedMilliseconds);
                }
            int chosen = 1 + Choose(best.AsSpan(1));
            var c = CultureInfo.InvariantCulture;
            var parts = new List<string> { $"float {best[0].ToString("0.000", c)} ms", $"every layer int8 {best[1].ToString("0.000", c)} ms" };
            for (int i = 2; i <= sets.Count; i++) parts.Add($"{string.Join(", ", sets[i - 1])} float {best[i].ToString("0.000", c)} ms");
            string shape = string.Join(",", batch.Inputs.Values.First().Shape);
            string verdict = sets[chosen - 1].Count == 0 ? "every layer int8 kept" : $"kept float: {string.Join(", ", sets[chosen - 1])}";
            string slower = best[chosen] > best[0] ? $"; WARNING: still {(best[chosen] / best[0]).ToString("0.00", c)}x the float model's time on this CPU" : "";
            return (sets[chosen - 1], $"speed check, whole model on one calibration batch [{shape}], fastest of {samples} interleaved runs: " +
                                     $"{string.Join("; ", parts)} → {verdict}{slower}.");
        }
        finally
        {
            foreach (var r in runners) r.Dispose();
        }
    }

    /// <summary>Near-ties are within this share of the fastest (timing noise): the one with the fewest float layers wins.</summary>
    public const double Tie = 0.02;

    /// <summary>Which candidate to keep, from the fastest run of each (candidate k keeps the first k layers float): the
    /// fastest, or among those within <see cref="Tie"/> of it, the one with the fewest float layers.</summary>
    internal static int Choose(ReadOnlySpan<double> fastestMs)
    {
        double fastest = double.PositiveInfinity;
        foreach (double t in fastestMs) fastest = Math.Min(fastest, t);
        for (int i = 0; i < fastestMs.Length; i++)
            if (fastestMs[i] <= fastest * (1 + Tie)) return i;
        return 0;
    }

    private static double InPlace(Timed t, GraphScope scope, IReadOnlyDictionary<NodeProto, QdqNodeRule> rules, HashSet<NodeProto> int8) =>
        t.Int8Ms + (Enters(t.Micro, scope, rules, int8) ? t.QuantizeMs : 0) + (Leaves(t.Micro, scope, rules, int8) ? t.DequantizeMs : 0);

    /// <summary>True when the layer's input comes from float: walking back through the quantized data-movement ops, the
    /// first compute node is not int8 (or there is none).</summary>
    private static bool Enters(Micro m, GraphScope scope, IReadOnlyDictionary<NodeProto, QdqNodeRule> rules, HashSet<NodeProto> int8)
    {
        var p = scope.Producer(m.Input);
        while (p is not null && rules.TryGetValue(p, out var rule) && !rule.IsCompute && p.Input.Count > 0)
            p = scope.Producer(p.Input[0]);
        return p is null || !int8.Contains(p);
    }

    /// <summary>True when a float op reads the layer's quantized output (through the quantized data-movement ops).</summary>
    private static bool Leaves(Micro m, GraphScope scope, IReadOnlyDictionary<NodeProto, QdqNodeRule> rules, HashSet<NodeProto> int8)
    {
        if (!m.OutputQuantized) return false;
        var pending = new Stack<string>([m.Output]);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (pending.TryPop(out var v))
        {
            if (!seen.Add(v)) continue;
            if (scope.IsGraphOutput(v)) return true;
            foreach (var r in scope.Consumers(v))
            {
                if (!rules.TryGetValue(r, out var rule)) return true;
                if (rule.IsCompute) { if (!int8.Contains(r)) return true; }
                else foreach (var o in r.Output) if (o.Length > 0) pending.Push(o);
            }
        }
        return false;
    }

    /// <summary>The one-layer models timed: the float layer, its int8 kernel, and the two conversions.</summary>
    private sealed record Micro(NodeProto Node, string Input, string Output, bool OutputQuantized, long[] InputShape,
        byte[] Float, byte[] Int8, byte[] Quantize, byte[]? Dequantize);

    private sealed record Timed(Micro Micro, double FloatMs, double Int8Ms, double QuantizeMs, double DequantizeMs);

    private static Micro? Build(GraphScope scope, ModelProto model, NodeProto node, IReadOnlyDictionary<NodeProto, QdqNodeRule> rules,
        IReadOnlyDictionary<string, QdqActivation> activations, IReadOnlyDictionary<string, QdqWeight> weights,
        IReadOnlyDictionary<string, HistogramStatistics> stats, QdqOptions options)
    {
        var rule = rules[node];
        // A computed B (two activations) or a clustered weight: not timed alone, kept int8.
        if (rule.Activations.Count != 1 || rule.Weight is not { } wi || !weights.TryGetValue(node.Input[wi.Index], out var weight)
            || weight.Clustered is not null || scope.Initializer(weight.Name) is null) return null;
        string x = node.Input[rule.Activations[0]];
        if (!activations.TryGetValue(x, out var xq) || !stats.TryGetValue(x, out var xs) || xs.FirstShape is not { } inShape) return null;
        // The Relu a quantized output sits after folds into the int8 kernel: time it with the layer on both sides.
        string y = node.Output[0];
        var readers = scope.Consumers(y);
        var relu = readers.Count == 1 && readers[0].OpType == "Relu" && rules.ContainsKey(readers[0]) && !activations.ContainsKey(y) ? readers[0] : null;
        string z = relu?.Output[0] ?? y;
        activations.TryGetValue(z, out var zq);
        if (!stats.TryGetValue(z, out var zs) || zs.FirstShape is not { } outShape) return null;

        var activationType = options.Activations == QdqActivationType.U8 ? OnnxDataType.UInt8 : OnnxDataType.Int8;
        var shapeIn = inShape.ToArray();
        var shapeOut = outShape.ToArray();

        // Float: x → layer (→ Relu) → z.
        var f = NewModel(model);
        f.Graph.Input.Add(Info("x", OnnxDataType.Float, shapeIn));
        var floatLayer = node.Clone();
        floatLayer.Input[rule.Activations[0]] = "x";
        for (int i = 0; i < floatLayer.Input.Count; i++)
            if (i != rule.Activations[0] && floatLayer.Input[i].Length > 0)
            {
                var c = scope.ConstantValue(floatLayer.Input[i]);
                if (c is null) return null;
                var copy = c.Clone();
                copy.Name = "c" + i.ToString(CultureInfo.InvariantCulture);
                floatLayer.Input[i] = copy.Name;
                f.Graph.Initializer.Add(copy);
            }
        floatLayer.Output[0] = relu is null ? "z" : "y";
        f.Graph.Node.Add(floatLayer);
        if (relu is not null) f.Graph.Node.Add(Node("Relu", ["y"], ["z"]));
        f.Graph.Output.Add(Info("z", OnnxDataType.Float, shapeOut));

        // Int8: x_q → DequantizeLinear → layer(DequantizeLinear(W_q), DequantizeLinear(B_int32)) (→ Relu) → QuantizeLinear → z_q.
        var q = NewModel(model);
        var g = q.Graph;
        g.Input.Add(Info("x_q", activationType, shapeIn));
        g.Initializer.Add(TensorData.FromFloats("x_scale", [], [xq.Scale]));
        g.Initializer.Add(ZeroPoint("x_zp", activationType, xq.ZeroPoint));
        g.Node.Add(Node("DequantizeLinear", ["x_q", "x_scale", "x_zp"], ["x"]));
        long[] scaleDims = weight.Axis is null ? [] : [weight.Scales.Count];
        var codes = weight.Quantized.ToArray();
        if (weight.StoredAsUInt8)
        {
            var shifted = new byte[codes.Length];
            for (int i = 0; i < shifted.Length; i++) shifted[i] = (byte)(codes[i] + QdqQuantizationPass.UInt8WeightZeroPoint);
            g.Initializer.Add(TensorData.FromUInt8("w_q", weight.Shape.ToArray(), shifted));
            g.Initializer.Add(TensorData.FromUInt8("w_zp", scaleDims, Enumerable.Repeat((byte)QdqQuantizationPass.UInt8WeightZeroPoint, weight.Scales.Count).ToArray()));
        }
        else
        {
            g.Initializer.Add(TensorData.FromInt8("w_q", weight.Shape.ToArray(), codes));
            g.Initializer.Add(TensorData.FromInt8("w_zp", scaleDims, new sbyte[weight.Scales.Count]));
        }
        g.Initializer.Add(TensorData.FromFloats("w_scale", scaleDims, weight.Scales.ToArray()));
        var dqw = Node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w"]);
        if (weight.Axis is int axis) dqw.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = axis });
        g.Node.Add(dqw);
        var intLayer = floatLayer.Clone();
        intLayer.Input[rule.Activations[0]] = "x";
        intLayer.Input[wi.Index] = "w";
        foreach (var init in f.Graph.Initializer.Where(t => t.Name != intLayer.Input[wi.Index] && intLayer.Input.Contains(t.Name)))
            g.Initializer.Add(init.Clone());
        if (rule.Bias is int b && b < intLayer.Input.Count && scope.ConstantValue(node.Input[b]) is { } biasTensor)
        {
            var bias = TensorData.ToFloatArray(biasTensor);
            var qb = new int[bias.Length];
            var sb = new float[bias.Length];
            var ws = weight.Scales.ToArray();
            if ((ws.Length == 1 || ws.Length == bias.Length) && AffineQuantization.TryQuantizeBias(bias, xq.Scale, ws, qb, sb))
            {
                g.Initializer.Remove(g.Initializer.First(t => t.Name == intLayer.Input[b]));
                bool perChannel = weight.Axis is not null;
                long[] bDims = perChannel ? [bias.Length] : [];
                g.Initializer.Add(TensorData.FromInt32("b_q", [bias.Length], qb));
                g.Initializer.Add(TensorData.FromFloats("b_scale", bDims, sb.AsSpan(0, perChannel ? sb.Length : 1)));
                g.Initializer.Add(TensorData.FromInt32("b_zp", bDims, new int[perChannel ? sb.Length : 1]));
                var dqb = Node("DequantizeLinear", ["b_q", "b_scale", "b_zp"], ["b"]);
                if (perChannel) dqb.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 0 });
                g.Node.Add(dqb);
                intLayer.Input[b] = "b";
            }
        }
        g.Node.Add(intLayer);
        if (relu is not null) g.Node.Add(Node("Relu", ["y"], ["z"]));
        bool outputQuantized = zq is not null;
        if (zq is not null)
        {
            g.Initializer.Add(TensorData.FromFloats("z_scale", [], [zq.Scale]));
            g.Initializer.Add(ZeroPoint("z_zp", activationType, zq.ZeroPoint));
            g.Node.Add(Node("QuantizeLinear", ["z", "z_scale", "z_zp"], ["z_q"]));
            g.Output.Add(Info("z_q", activationType, shapeOut));
        }
        else g.Output.Add(Info("z", OnnxDataType.Float, shapeOut));

        // The conversions at the borders of int8.
        var qm = NewModel(model);
        qm.Graph.Input.Add(Info("x", OnnxDataType.Float, shapeIn));
        qm.Graph.Initializer.Add(TensorData.FromFloats("s", [], [xq.Scale]));
        qm.Graph.Initializer.Add(ZeroPoint("zp", activationType, xq.ZeroPoint));
        qm.Graph.Node.Add(Node("QuantizeLinear", ["x", "s", "zp"], ["x_q"]));
        qm.Graph.Output.Add(Info("x_q", activationType, shapeIn));
        ModelProto? dm = null;
        if (zq is not null)
        {
            dm = NewModel(model);
            dm.Graph.Input.Add(Info("z_q", activationType, shapeOut));
            dm.Graph.Initializer.Add(TensorData.FromFloats("s", [], [zq.Scale]));
            dm.Graph.Initializer.Add(ZeroPoint("zp", activationType, zq.ZeroPoint));
            dm.Graph.Node.Add(Node("DequantizeLinear", ["z_q", "s", "zp"], ["z"]));
            dm.Graph.Output.Add(Info("z", OnnxDataType.Float, shapeOut));
        }
        return new Micro(node, x, z, outputQuantized, shapeIn, Bytes(f), Bytes(q), Bytes(qm), dm is null ? null : Bytes(dm));
    }

    private static byte[] Bytes(ModelProto m) => ModelGraph.FromProto(m).ToBytes();

    private static ModelProto NewModel(ModelProto like)
    {
        var m = new ModelProto { IrVersion = like.IrVersion, Graph = new GraphProto { Name = "layer" } };
        m.OpsetImport.AddRange(like.OpsetImport.Select(o => o.Clone()));
        return m;
    }

    private static TensorProto ZeroPoint(string name, OnnxDataType type, int value) => type == OnnxDataType.UInt8
        ? TensorData.FromUInt8(name, [], [(byte)value])
        : TensorData.FromInt8(name, [], [(sbyte)value]);

    private static NodeProto Node(string op, string[] inputs, string[] outputs)
    {
        var n = new NodeProto { OpType = op, Name = op + "_" + outputs[0] };
        n.Input.AddRange(inputs);
        n.Output.AddRange(outputs);
        return n;
    }

    private static ValueInfoProto Info(string name, OnnxDataType type, long[] shape)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = new TensorShapeProto() };
        foreach (var d in shape) tensor.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }

    /// <summary>The fastest of <paramref name="samples"/> interleaved runs of each model (the order rotates each round).</summary>
    private static Timed Time(Micro m, RuntimeOptions runtime, int samples)
    {
        var models = new List<byte[]> { m.Float, m.Int8, m.Quantize };
        if (m.Dequantize is not null) models.Add(m.Dequantize);
        var sessions = new List<TimedSession>();
        try
        {
            foreach (var bytes in models) sessions.Add(new TimedSession(OrtSessionFactory.Create(bytes, runtime)));
            foreach (var s in sessions) { s.Run(); s.Run(); }
            var best = Enumerable.Repeat(double.PositiveInfinity, sessions.Count).ToArray();
            for (int round = 0; round < samples; round++)
                for (int k = 0; k < sessions.Count; k++)
                {
                    int i = (k + round) % sessions.Count;
                    best[i] = Math.Min(best[i], sessions[i].Run());
                }
            return new Timed(m, best[0], best[1], best[2], sessions.Count > 3 ? best[3] : 0);
        }
        finally
        {
            foreach (var s in sessions) s.Dispose();
        }
    }

    /// <summary>A session with random inputs of its declared types and shapes, bound once.</summary>
    private sealed class TimedSession : IDisposable
    {
        private readonly InferenceSession _session;
        private readonly List<OrtValue> _inputs = [];
        private readonly string[] _inputNames;
        private readonly string[] _outputNames;
        private readonly RunOptions _run = new();

        public TimedSession(InferenceSession session)
        {
            _session = session;
            var random = new Random(1);
            _inputNames = session.InputMetadata.Keys.ToArray();
            _outputNames = session.OutputMetadata.Keys.ToArray();
            foreach (var meta in session.InputMetadata.Values)
            {
                long[] shape = meta.Dimensions.Select(d => (long)d).ToArray();
                int n = checked((int)shape.Aggregate(1L, (a, b) => a * b));
                _inputs.Add(meta.ElementDataType switch
                {
                    TensorElementType.UInt8 => OrtValue.CreateTensorValueFromMemory(Fill(new byte[n], random), shape),
                    TensorElementType.Int8 => OrtValue.CreateTensorValueFromMemory(Fill(new sbyte[n], random), shape),
                    _ => OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, n).Select(_ => (float)random.NextDouble()).ToArray(), shape),
                });
            }
        }

        private static byte[] Fill(byte[] a, Random r) { r.NextBytes(a); return a; }

        private static sbyte[] Fill(sbyte[] a, Random r)
        {
            for (int i = 0; i < a.Length; i++) a[i] = (sbyte)r.Next(-128, 128);
            return a;
        }

        public double Run()
        {
            long start = Stopwatch.GetTimestamp();
            using var outputs = _session.Run(_run, _inputNames, _inputs, _outputNames);
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        public void Dispose()
        {
            foreach (var v in _inputs) v.Dispose();
            _run.Dispose();
            _session.Dispose();
        }
    }
}
