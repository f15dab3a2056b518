using System.Globalization;
using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Runtime;

namespace MLNetCompress.LowRank;

/// <summary>How long one layer takes in ONNX Runtime before and after its split (the fastest of interleaved runs).</summary>
/// <param name="Weight">The layer's weight.</param>
/// <param name="OriginalMs">Fastest run of the original layer, in milliseconds.</param>
/// <param name="SplitMs">Fastest run of the split layer, in milliseconds.</param>
public sealed record LayerTimingResult(string Weight, double OriginalMs, double SplitMs)
{
    /// <summary>Original time over split time (above 1: the split is faster).</summary>
    public double Speedup => SplitMs == 0 ? double.NaN : OriginalMs / SplitMs;

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Weight}: {OriginalMs:0.000} ms whole, {SplitMs:0.000} ms split, {Speedup:0.00}x");
}

/// <summary>
/// Times a layer alone: a one-node model (the layer at the input shape it sees in the real model, found by one
/// run on random input) against the same layer split as planned, run alternately on one random batch.
/// What <c>lowrank --measure</c> uses to keep only the splits ONNX Runtime runs faster.
/// </summary>
public static class LayerTiming
{
    /// <summary>Times the planned <paramref name="layer"/> of the model at <paramref name="modelPath"/>.</summary>
    /// <param name="modelPath">The model the layer was planned on.</param>
    /// <param name="layer">A layer from the <see cref="LowRankPlan"/> of that model (e.g. <c>new LowRankPass(options).Preview(graph)</c>).</param>
    /// <param name="runtime">Runtime for both sessions (default: the global thread pool).</param>
    /// <param name="samples">Timed runs of each.</param>
    public static LayerTimingResult Measure(string modelPath, LowRankLayer layer, RuntimeOptions? runtime = null, int samples = 30)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        ArgumentNullException.ThrowIfNull(layer);
        runtime ??= RuntimeOptions.Default;
        var graph = ModelGraph.Load(modelPath);
        string input = LayerNodes(graph, layer)[0].Input[0];
        return Measure(graph, layer, InputShapes(graph, [input], runtime)[input], runtime, samples);
    }

    /// <summary>The nodes timed for a layer: its node, and a BatchNormalization folded into it.</summary>
    private static NodeProto[] LayerNodes(ModelGraph graph, LowRankLayer layer)
    {
        var last = graph.Main.Producer(layer.Output) ?? throw new InvalidOperationException($"no node produces '{layer.Output}'.");
        // A folded BatchNormalization is part of the layer: time the conv with it.
        return last.OpType == "BatchNormalization" ? [graph.Main.Producer(last.Input[0])!, last] : [last];
    }

    /// <summary>The shapes of main-graph values <paramref name="values"/>: one row of random data through the model, the values as extra outputs.</summary>
    internal static IReadOnlyDictionary<string, long[]> InputShapes(ModelGraph graph, IReadOnlyCollection<string> values, RuntimeOptions runtime)
    {
        var names = values.Distinct(StringComparer.Ordinal).ToList();
        using var probe = ModelRunner.Load(CalibrationCollector.WithOutputs(graph, names), runtime, null, names);
        var feed = new RandomFeed(probe.Inputs, rows: 1);
        var outputs = probe.Run(feed.Batches(1).First());
        return names.ToDictionary(n => n, n => outputs[n].Shape.ToArray(), StringComparer.Ordinal);
    }

    /// <summary>Times <paramref name="layer"/> of <paramref name="graph"/> (the graph it was planned on) at input shape <paramref name="shape"/>.</summary>
    internal static LayerTimingResult Measure(ModelGraph graph, LowRankLayer layer, long[] shape, RuntimeOptions runtime, int samples)
    {
        var nodes = LayerNodes(graph, layer);
        string input = nodes[0].Input[0];
        var single = new ModelProto { IrVersion = graph.IrVersion, Graph = new GraphProto { Name = "layer" } };
        single.OpsetImport.AddRange(graph.Model.OpsetImport.Select(o => o.Clone()));
        var g = single.Graph;
        g.Input.Add(TensorInfo(input, shape));
        g.Output.Add(new ValueInfoProto { Name = layer.Output, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)OnnxDataType.Float } } });
        foreach (var node in nodes)
        {
            foreach (var name in node.Input.Skip(1).Where(n => n.Length > 0))
                g.Initializer.Add((graph.Main.ConstantValue(name) ?? throw new InvalidOperationException($"'{name}' is not constant.")).Clone());
            g.Node.Add(node.Clone());
        }
        var whole = ModelGraph.FromProto(single);
        byte[] before = whole.ToBytes();
        LowRankPass.Apply(whole, layer);
        byte[] after = whole.ToBytes();

        using var a = ModelRunner.Load(before, runtime);
        using var b = ModelRunner.Load(after, runtime);
        var batch = new RandomFeed(a.Inputs, rows: shape[0]).Batches((int)shape[0]).First();
        // Interleaved, alternating which goes first; the fastest run of each: load from other processes only ever adds
        // time, so the minimum is the steadiest estimate of what the layer itself costs.
        for (int i = 0; i < 2; i++)
        {
            a.Run(batch);
            b.Run(batch);
        }
        double fastA = double.PositiveInfinity, fastB = double.PositiveInfinity;
        for (int i = 0; i < samples; i++)
        {
            if (i % 2 == 0)
            {
                fastA = Math.Min(fastA, a.Run(batch).ElapsedMilliseconds);
                fastB = Math.Min(fastB, b.Run(batch).ElapsedMilliseconds);
            }
            else
            {
                fastB = Math.Min(fastB, b.Run(batch).ElapsedMilliseconds);
                fastA = Math.Min(fastA, a.Run(batch).ElapsedMilliseconds);
            }
        }
        return new LayerTimingResult(layer.Weight, fastA, fastB);
    }

    private static ValueInfoProto TensorInfo(string name, long[] shape)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)OnnxDataType.Float, Shape = new TensorShapeProto() };
        foreach (var d in shape) tensor.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }
}
