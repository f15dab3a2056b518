using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Runtime;

namespace MLNetCompress.Tests.Preparation;

/// <summary>How far a rewritten model's outputs are from the original's, both run in ONNX Runtime.</summary>
internal sealed record Agreement(double MinCosine, double MaxAbsDiff, double MaxAbsReference, int Outputs)
{
    public double RelativeDiff => MaxAbsReference == 0 ? MaxAbsDiff : MaxAbsDiff / MaxAbsReference;

    public override string ToString() => $"{Outputs} outputs, min cosine {MinCosine:F8}, max abs diff {MaxAbsDiff:G3} (relative {RelativeDiff:G3})";
}

internal static class PreparationChecks
{
    /// <summary>Runs both models in ONNX Runtime on the same inputs (random probes or the given batches) and compares every output.</summary>
    public static Agreement Compare(byte[] original, byte[] rewritten, IEnumerable<IReadOnlyDictionary<string, NamedTensor>>? inputs = null, int rows = 4)
    {
        using var a = ModelRunner.Load(original);
        using var b = ModelRunner.Load(rewritten);
        Assert.Equal(a.OutputNames, b.OutputNames);
        inputs ??= new RandomFeed(a.Inputs, rows, seed: 3).Batches(rows).Select(x => x.Inputs).ToList();
        double minCos = 1, maxDiff = 0, maxRef = 0;
        foreach (var batch in inputs)
        {
            var ya = a.Run(batch).Outputs.Select(o => (o.Name, Data: o.Data.ToArray(), Shape: o.Shape.ToArray())).ToList();
            var yb = b.Run(batch);
            foreach (var (name, data, shape) in ya)
            {
                var other = yb[name];
                Assert.Equal(shape, other.Shape.ToArray());
                var d = other.Data;
                double dot = 0, na = 0, nb = 0;
                for (int i = 0; i < data.Length; i++)
                {
                    dot += (double)data[i] * d[i]; na += (double)data[i] * data[i]; nb += (double)d[i] * d[i];
                    maxDiff = Math.Max(maxDiff, Math.Abs(data[i] - d[i]));
                    maxRef = Math.Max(maxRef, Math.Abs(data[i]));
                }
                double cos = na == 0 && nb == 0 ? 1 : dot / Math.Sqrt(na * nb);
                minCos = Math.Min(minCos, cos);
            }
        }
        return new Agreement(minCos, maxDiff, maxRef, a.OutputNames.Count);
    }

    /// <summary>Asserts near-equality: cosine ≥ 0.99999 and max abs diff ≤ <paramref name="relative"/> of the largest output magnitude.</summary>
    public static Agreement AssertEquivalent(byte[] original, byte[] rewritten, double relative = 1e-4,
        IEnumerable<IReadOnlyDictionary<string, NamedTensor>>? inputs = null)
    {
        var r = Compare(original, rewritten, inputs);
        Assert.True(r.MinCosine >= 0.99999, r.ToString());
        Assert.True(r.RelativeDiff <= relative, r.ToString());
        return r;
    }

    /// <summary>Runs passes through <see cref="PassManager"/> (so the invariants are checked) and returns the results.</summary>
    public static IReadOnlyList<PassResult> Run(ModelGraph graph, params IGraphPass[] passes) => PassManager.Run(graph, passes);

    public static int Count(ModelGraph graph, string opType) => graph.Scopes.Sum(s => s.Nodes.Count(n => n.OpType == opType));

    /// <summary>A deterministic random ResNet18 input (values in the preprocessed image's range).</summary>
    public static IReadOnlyDictionary<string, NamedTensor>[] ResNetInputs(int count)
    {
        var list = new IReadOnlyDictionary<string, NamedTensor>[count];
        var rng = new Random(11);
        for (int k = 0; k < count; k++)
        {
            var x = new float[3 * 224 * 224];
            for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 255 - 120);
            list[k] = new Dictionary<string, NamedTensor> { ["Input247"] = new NamedTensor(x, [1, 3, 224, 224]) };
        }
        return list;
    }
}
