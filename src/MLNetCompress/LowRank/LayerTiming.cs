using System.Globalization;
using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Runtime;

namespace MLNetCompress.LowRank;

/// <summary>How long one layer takes in ONNX Runtime before and after its split (median of interleaved runs).</summary>
/// <param name="Weight">The layer's weight.</param>
/// <param name="OriginalMs">Median milliseconds of the original layer.</param>
/// <param name="SplitMs">Median milliseconds of the split layer.</param>
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
/// run on random input) against the same layer split as planned, interleaved by <see cref="ModelComparer"/>.
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
        var last = graph.Main.Producer(layer.Output) ?? throw new InvalidOperationException($"no node produces '{layer.Output}'.");
        // A folded BatchNormalization is part of the layer: time the conv with it.
        var nodes = last.OpType == "BatchNormalization" ? new[] { graph.Main.Producer(last.Input[0])!, last } : [last];
        string input = nodes[0].Input[0];

        // The layer's input shape: one batch of random data through the model with the input as an extra output.
        long[] shape;
        using (var probe = ModelRunner.Load(CalibrationCollector.WithOutputs(graph, [input]), runtime, null, [input]))
        {
            var feed = new RandomFeed(probe.Inputs, rows: 1);
            var batch = feed.Batches(1).First();
            shape = probe.Run(batch)[input].Shape.ToArray();
        }

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

        using var sizing = ModelRunner.Load(before, runtime);
        var random = new RandomFeed(sizing.Inputs, rows: shape[0]);
        var report = ModelComparer.Compare(before, after, random,
            new EvalOptions { BatchSize = (int)shape[0], MaxRows = (int)shape[0], MinLatencySamples = samples, Runtime = runtime });
        return new LayerTimingResult(layer.Weight, report.BaselineMedianMs, report.CandidateMedianMs);
    }

    private static ValueInfoProto TensorInfo(string name, long[] shape)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)OnnxDataType.Float, Shape = new TensorShapeProto() };
        foreach (var d in shape) tensor.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }
}
