using System.Security.Cryptography;
using Microsoft.ML.OnnxRuntime;
using MLNetCompress.Testing;

namespace MLNetCompress.Onnx.Tests;

/// <summary>
/// Real models survive read → write → read: ONNX Runtime gives bit-identical outputs for the original
/// file and the rewritten bytes, and writing the same model twice gives the same bytes.
/// </summary>
public class RealModelRoundTripTests
{
    public static TheoryData<string> Models => ["mlp", "cnn", "resnet18", "minilm"];

    private static string PathOf(string model) => model switch
    {
        "mlp" => RealModels.MlpSample,
        "cnn" => RealModels.CnnSample,
        "resnet18" => RealModels.ResNet18,
        "minilm" => RealModels.MiniLm,
        _ => throw new ArgumentOutOfRangeException(nameof(model)),
    };

    // Deterministic inputs for a signature: symbolic dims are 1 (batch) or 12 (sequence); floats in [0, 1);
    // int64 inputs are MiniLM's token ids (in its 30522-word vocabulary), attention mask and token types.
    private static (string Name, OrtValue Value)[] InputsFor(GraphSignature signature, int seed)
    {
        var rng = new Random(seed);
        var inputs = new List<(string, OrtValue)>();
        foreach (var input in signature.Inputs)
        {
            Assert.NotNull(input.Shape);
            var shape = input.Shape!.Select((d, k) => d ?? (k == 0 ? 1L : 12L)).ToArray();
            long count = shape.Aggregate(1L, (a, b) => a * b);
            switch (input.ElementType)
            {
                case OnnxDataType.Float:
                    inputs.Add((input.Name, Ort.Floats(Enumerable.Range(0, (int)count).Select(_ => (float)rng.NextDouble()).ToArray(), shape)));
                    break;
                case OnnxDataType.Int64:
                    var values = input.Name switch
                    {
                        "attention_mask" => Enumerable.Repeat(1L, (int)count).ToArray(),
                        "token_type_ids" => new long[count],
                        _ => Enumerable.Range(0, (int)count).Select(i => i == 0 ? 101L : i == count - 1 ? 102L : rng.NextInt64(1000, 30000)).ToArray(),
                    };
                    inputs.Add((input.Name, Ort.Int64s(values, shape)));
                    break;
                default:
                    throw new InvalidOperationException($"no test input for {input}");
            }
        }
        return [.. inputs];
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void RewrittenModel_GivesBitIdenticalOutputsInOrt(string model)
    {
        var path = PathOf(model);
        var graph = ModelGraph.Load(path);
        var written = graph.ToBytes();
        var reread = ModelGraph.FromBytes(written);
        // Read → write → read → write is a fixed point.
        Assert.Equal(written, reread.ToBytes());
        Assert.Equal(graph.Signature.Inputs.Select(i => i.ToString()), reread.Signature.Inputs.Select(i => i.ToString()));
        Assert.Equal(graph.Constants.Count(), reread.Constants.Count());

        var inputs = InputsFor(graph.Signature, seed: 7);
        try
        {
            var expected = Ort.Run(path, inputs);
            var actual = Ort.Run(written, inputs);
            Assert.Equal(expected.Length, actual.Length);
            for (int k = 0; k < expected.Length; k++)
            {
                Assert.Equal(expected[k].Name, actual[k].Name);
                Assert.Equal(expected[k].Shape, actual[k].Shape);
                Assert.Equal(expected[k].Bytes, actual[k].Bytes);
            }
            // The comparison means something only if the model computed real numbers.
            var first = expected[0].Floats;
            Assert.All(first, v => Assert.True(float.IsFinite(v)));
            Assert.True(first.Distinct().Count() > first.Length / 10, "outputs are nearly constant");
        }
        finally
        {
            foreach (var (_, v) in inputs) v.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void WritingTwice_GivesIdenticalBytes(string model)
    {
        var path = PathOf(model);
        var dir = RealModels.TempDir("twice-" + model);
        var before = SHA256.HashData(File.ReadAllBytes(path));
        var a = ModelGraph.Load(path);
        a.Save(Path.Combine(dir, "a.onnx"));
        ModelGraph.Load(path).Save(Path.Combine(dir, "b.onnx"));
        var bytesA = File.ReadAllBytes(Path.Combine(dir, "a.onnx"));
        Assert.Equal(bytesA, File.ReadAllBytes(Path.Combine(dir, "b.onnx")));
        Assert.Equal(bytesA, a.ToBytes());
        // Reading and saving elsewhere never touches the input, and leaves no temp files.
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(path)));
        Assert.Equal(["a.onnx", "b.onnx"], Directory.GetFiles(dir).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void ResNet18_LoadsWithItsConstants()
    {
        var g = ModelGraph.Load(RealModels.ResNet18);
        Assert.Equal(3, g.IrVersion);
        Assert.Equal(8, g.OnnxOpset);
        // This IR 3 export does not list its initializers among the graph inputs (the IR 3 case that
        // does is in ModelGraphEditTests): one input, the image.
        Assert.Single(g.Main.Proto.Input);
        var input = Assert.Single(g.Signature.Inputs);
        Assert.Equal("float[1,3,224,224]", input.ToString());
        Assert.Equal(g.Main.Proto.Initializer.Count, g.Constants.Count());
        Assert.All(g.Constants, c => Assert.Equal(ConstantKind.Initializer, c.Kind));
        // The file is its float weights plus some 18 KB of graph: every weight decodes, 4 bytes each.
        long parameters = g.Constants.Sum(c => (long)c.ToFloats().Length);
        long fileBytes = new FileInfo(RealModels.ResNet18).Length;
        Assert.InRange(parameters * 4, fileBytes - 64 * 1024, fileBytes);
    }

    [Fact]
    public void MiniLm_LoadsWithConstantNodes()
    {
        var g = ModelGraph.Load(RealModels.MiniLm);
        Assert.Equal(13, g.OnnxOpset);
        Assert.Equal(["input_ids", "attention_mask", "token_type_ids"], g.Signature.Inputs.Select(i => i.Name));
        Assert.Equal(48, g.AllNodes.Count(n => n.Node.OpType == "MatMul"));
        Assert.Contains(g.Constants, c => c.Kind == ConstantKind.ConstantNode);
        Assert.Contains(g.Constants, c => c.Kind == ConstantKind.Initializer && c.Dims.SequenceEqual([384L, 384L]));
    }
}
