using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Microsoft.ML.OnnxRuntime;
using Xunit.Abstractions;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Quantization;

/// <summary>The int8 weight storage on the real models: ResNet18 (IR 3, opset 8), MiniLM (opset 13) and the samples.</summary>
public class Int8WeightStorageRealModelTests(ITestOutputHelper output)
{
    /// <summary>Runs the pass on a model file, saves the result, and returns (original graph, rewritten graph, saved path, result).</summary>
    private static (ModelGraph Original, ModelGraph Stored, string Path, PassResult Result) Compress(string modelPath, Int8WeightStorageOptions? options = null)
    {
        var original = ModelGraph.Load(modelPath);
        var graph = ModelGraph.Load(modelPath);
        var result = PassManager.Run(graph, [new Int8WeightStoragePass(options)])[0];
        var path = System.IO.Path.Combine(RealModels.TempDir("int8-storage"), System.IO.Path.GetFileNameWithoutExtension(modelPath) + ".int8.onnx");
        graph.Save(path);
        return (original, graph, path, result);
    }

    /// <summary>A deterministic random image in ResNet18's own input domain: pixels uniform in 0..255, in BGR,
    /// minus the per-pixel mean image, as ML.NET's ResNetPreprocess.onnx prepares them.</summary>
    private static Dictionary<string, NamedTensor> ResNetRandomImage(int seed)
    {
        var mean = ImagePreprocessing.ResNet18MLNet(RealModels.ResNetPreprocess).MeanImage!;
        var rng = new Random(seed);
        var x = new float[mean.Length];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 255) - mean[i];
        return new() { ["Input247"] = new NamedTensor(x, [1, 3, 224, 224]) };
    }

    [Fact]
    public void ResNet18_WeightsMatchTheReference_OutputsMatch_FoldsAtLoad_AndShrinks()
    {
        var (original, stored, path, result) = Compress(RealModels.ResNet18);
        Assert.True(result.Modified);

        // (1) every Conv weight is stored per output channel and matches the formula within scale/2.
        var convWeights = original.Main.Nodes.Where(n => n.OpType == "Conv").Select(n => n.Input[1]).Distinct().ToList();
        Assert.True(convWeights.Count >= 20);
        double worst = 0;
        foreach (var name in convWeights)
        {
            var before = original.Main.Initializer(name)!;
            var s = Stored(stored, name);
            Assert.Equal(0, AxisOf(s.ScaleDims) ?? 0);
            worst = Math.Max(worst, AssertMatchesReference(TensorData.ToFloatArray(before), before.Dims.ToArray(), s));
        }
        output.WriteLine($"ResNet18: {convWeights.Count} Conv weights, largest weight error {worst:G3}");

        // (2) ONNX Runtime's outputs match the original's on a deterministic random image ...
        var input = ResNetRandomImage(7);
        double cosine = Cosine(Run(File.ReadAllBytes(RealModels.ResNet18), input)[0], Run(File.ReadAllBytes(path), input)[0]);
        output.WriteLine($"ResNet18: random image, output cosine {cosine:F6}");
        Assert.True(cosine > 0.999, $"cosine {cosine}");
        // ... and on the six sample photos, prepared the way ML.NET's DnnImageFeaturizer prepares them.
        using var runner = ModelRunner.Load(RealModels.ResNet18);
        var photos = new ImageFolderFeed(Path.Combine(RealModels.SamplesDir, "images"),
            ImagePreprocessing.ResNet18MLNet(RealModels.ResNetPreprocess), runner.Inputs);
        var cosines = new List<double>();
        foreach (var batch in photos.Batches(1))
        {
            cosines.Add(Cosine(runner.Run(batch).Outputs[0].Data, Run(File.ReadAllBytes(path), batch.Inputs)[0]));
            output.WriteLine($"ResNet18: {batch.Ids[0]}, output cosine {cosines[^1]:F6}");
        }
        Assert.Equal(6, cosines.Count);
        Assert.True(cosines.Average() > 0.999, $"mean cosine {cosines.Average()}");
        // A dark, mostly empty photo (hubble_deep_field) gives small features and the lowest cosine.
        Assert.True(cosines.Min() > 0.998, $"min cosine {cosines.Min()}");

        // (3) ONNX Runtime folds Cast+Mul back into float initializers at load: its optimized graph has every
        // Conv weight as a float initializer, no Cast or Mul of the int8 storage, and the same ops as the
        // original's optimized graph, so inference runs exactly the original's kernels.
        foreach (var level in new[] { GraphOptimizationLevel.ORT_ENABLE_EXTENDED, GraphOptimizationLevel.ORT_ENABLE_ALL })
        {
            var optimized = OptimizedByOrt(path, level);
            int weights = AssertFolded(optimized, "Conv", "FusedConv");
            Assert.Equal(convWeights.Count, weights);
            Assert.Equal(OpCounts(OptimizedByOrt(RealModels.ResNet18, level)), OpCounts(optimized));
            output.WriteLine($"ResNet18 optimized by ONNX Runtime ({level}): {weights} conv weights, all float initializers; ops {OpCounts(optimized)}");
        }

        // (4) at least 3.5x smaller on disk.
        long sizeBefore = OnnxModelIO.SizeOnDisk(RealModels.ResNet18), sizeAfter = OnnxModelIO.SizeOnDisk(path);
        output.WriteLine($"ResNet18: {sizeBefore} -> {sizeAfter} bytes ({(double)sizeBefore / sizeAfter:F2}x)");
        Assert.True(sizeBefore >= 3.5 * sizeAfter, $"{sizeBefore} -> {sizeAfter}");
    }

    [Fact]
    public void MiniLm_EmbeddingsMatch_FoldsAtLoad()
    {
        var (original, stored, path, result) = Compress(RealModels.MiniLm);
        Assert.True(result.Modified);

        // Every MatMul/Gemm weight is stored per output column: MatMul's last axis; the pooler's Gemm has
        // transB=1 ([out, in]), so axis 0 there.
        var weights = original.Main.Nodes.Where(n => n.OpType is "MatMul" or "Gemm" && original.Main.Initializer(n.Input[1]) is not null)
            .Select(n => (Name: n.Input[1], Axis: n.OpType == "Gemm" && n.Attribute.Any(a => a.Name == "transB" && a.I == 1) ? 0 : 1))
            .Distinct().ToList();
        Assert.Equal(37, weights.Count);
        foreach (var (name, axis) in weights)
        {
            var before = original.Main.Initializer(name)!;
            var s = Stored(stored, name);
            Assert.Equal(axis, AxisOf(s.ScaleDims));
            AssertMatchesReference(TensorData.ToFloatArray(before), before.Dims.ToArray(), s);
        }

        // Mean-pooled sentence embeddings of real sentences agree.
        var cosines = MiniLmEmbeddingCosines(path, 32);
        output.WriteLine($"MiniLM: {weights.Count} weights; embedding cosine min {cosines.Min():F6}, mean {cosines.Average():F6}");
        Assert.True(cosines.Min() > 0.99, $"min cosine {cosines.Min()}");

        foreach (var level in new[] { GraphOptimizationLevel.ORT_ENABLE_EXTENDED, GraphOptimizationLevel.ORT_ENABLE_ALL })
        {
            var optimized = OptimizedByOrt(path, level);
            AssertFolded(optimized);
            Assert.Equal(OpCounts(OptimizedByOrt(RealModels.MiniLm, level)), OpCounts(optimized));
            output.WriteLine($"MiniLM optimized by ONNX Runtime ({level}): ops {OpCounts(optimized)}");
        }

        long sizeBefore = OnnxModelIO.SizeOnDisk(RealModels.MiniLm), sizeAfter = OnnxModelIO.SizeOnDisk(path);
        output.WriteLine($"MiniLM: {sizeBefore} -> {sizeAfter} bytes ({(double)sizeBefore / sizeAfter:F2}x; the 30522x384 word embedding feeds a Gather and stays float)");
        Assert.True(sizeBefore >= 1.5 * sizeAfter, $"{sizeBefore} -> {sizeAfter}");
    }

    [Fact]
    public void MiniLm_WithGather_StoresTheEmbeddingTablesToo()
    {
        var options = new Int8WeightStorageOptions { Ops = Int8WeightStorageOptions.SupportedOps };
        var (original, stored, path, _) = Compress(RealModels.MiniLm, options);
        var table = original.Main.Initializer("embeddings.word_embeddings.weight")!;
        var s = Stored(stored, table.Name);
        Assert.Equal(0, AxisOf(s.ScaleDims)); // one scale per token row
        AssertMatchesReference(TensorData.ToFloatArray(table), table.Dims.ToArray(), s);

        var cosines = MiniLmEmbeddingCosines(path, 32);
        long sizeBefore = OnnxModelIO.SizeOnDisk(RealModels.MiniLm), sizeAfter = OnnxModelIO.SizeOnDisk(path);
        output.WriteLine($"MiniLM with Gather: {sizeBefore} -> {sizeAfter} bytes ({(double)sizeBefore / sizeAfter:F2}x); embedding cosine min {cosines.Min():F6}, mean {cosines.Average():F6}");
        Assert.True(cosines.Min() > 0.99, $"min cosine {cosines.Min()}");
        Assert.True(sizeBefore >= 3.5 * sizeAfter, $"{sizeBefore} -> {sizeAfter}");
        AssertFolded(OptimizedByOrt(path));
    }

    [Theory]
    [InlineData("mlp")]
    [InlineData("cnn")]
    public void Samples_WeightsMatch_PredictionsAgree_FoldsAtLoad(string sample)
    {
        string model = sample == "mlp" ? RealModels.MlpSample : RealModels.CnnSample;
        var (original, stored, path, result) = Compress(model);
        Assert.True(result.Modified);

        int checkedWeights = 0;
        foreach (var n in original.Main.Nodes.Where(n => n.OpType is "Conv" or "Gemm"))
        {
            var before = original.Main.Initializer(n.Input[1])!;
            if (TensorData.ElementCount(before.Dims.ToArray()) < 1024)
            {
                Assert.Contains(result.Skipped, line => line.StartsWith(before.Name + " ", StringComparison.Ordinal));
                continue;
            }
            var s = Stored(stored, before.Name);
            // PyTorch exports Linear as Gemm with transB=1: [out, in], so the output channels are axis 0, as for Conv.
            Assert.Equal(0, AxisOf(s.ScaleDims));
            AssertMatchesReference(TensorData.ToFloatArray(before), before.Dims.ToArray(), s);
            checkedWeights++;
        }
        Assert.True(checkedWeights >= 2);

        // Logits on the bundled Fashion-MNIST test images: same class almost everywhere, cosine near 1.
        using var a = ModelRunner.Load(model);
        using var b = ModelRunner.Load(path);
        var feed = new FashionMnistFeed(RealModels.FashionMnistSubset, a.Inputs);
        int rows = 0, agree = 0;
        double minCosine = 1;
        foreach (var batch in feed.Batches(100, 500))
        {
            var ya = a.Run(batch).Outputs[0].Data.ToArray();
            var yb = b.Run(batch).Outputs[0];
            for (int r = 0; r < batch.RowCount; r++)
            {
                var ra = ya.AsSpan(r * 10, 10);
                var rb = yb.Row(r);
                minCosine = Math.Min(minCosine, Cosine(ra, rb));
                if (System.Numerics.Tensors.TensorPrimitives.IndexOfMax(ra) == System.Numerics.Tensors.TensorPrimitives.IndexOfMax(rb)) agree++;
                rows++;
            }
        }
        output.WriteLine($"{sample}: {checkedWeights} weights; {rows} images, top-1 agreement {(double)agree / rows:P1}, min logit cosine {minCosine:F6}");
        Assert.True(minCosine > 0.999, $"min cosine {minCosine}");
        Assert.True(agree >= rows * 0.99, $"{agree}/{rows} agree");

        var optimized = OptimizedByOrt(path);
        AssertFolded(optimized, "Conv", "FusedConv", "Gemm", "FusedGemm");
        Assert.Equal(OpCounts(OptimizedByOrt(model)), OpCounts(optimized));

        long sizeBefore = OnnxModelIO.SizeOnDisk(model), sizeAfter = OnnxModelIO.SizeOnDisk(path);
        output.WriteLine($"{sample}: {sizeBefore} -> {sizeAfter} bytes ({(double)sizeBefore / sizeAfter:F2}x); optimized ops {OpCounts(optimized)}");
        Assert.True(sizeBefore >= 3.5 * sizeAfter, $"{sizeBefore} -> {sizeAfter}");
    }

    /// <summary>Per sentence, the cosine between the original's and the model's mean-pooled (masked) embeddings.</summary>
    private static List<double> MiniLmEmbeddingCosines(string modelPath, int sentences)
    {
        using var a = ModelRunner.Load(RealModels.MiniLm);
        using var b = ModelRunner.Load(modelPath);
        using var vocab = File.OpenRead(RealModels.MiniLmVocab);
        var feed = new TextFeed(Path.Combine(RealModels.SamplesDir, "text", "sentences.txt"), vocab, a.Inputs, maxLength: 64);
        var cosines = new List<double>();
        foreach (var batch in feed.Batches(8, sentences))
        {
            var mask = batch.Inputs["attention_mask"].Int64Data;
            var ea = MeanPool(a.Run(batch)["last_hidden_state"], mask);
            var eb = MeanPool(b.Run(batch)["last_hidden_state"], mask);
            for (int r = 0; r < batch.RowCount; r++) cosines.Add(Cosine(ea[r], eb[r]));
        }
        Assert.Equal(sentences, cosines.Count);
        return cosines;
    }

    private static float[][] MeanPool(OutputTensor hidden, long[] mask)
    {
        int rows = (int)hidden.Shape[0], tokens = (int)hidden.Shape[1], width = (int)hidden.Shape[2];
        var pooled = new float[rows][];
        for (int r = 0; r < rows; r++)
        {
            pooled[r] = new float[width];
            int used = 0;
            for (int t = 0; t < tokens; t++)
            {
                if (mask[r * tokens + t] == 0) continue;
                System.Numerics.Tensors.TensorPrimitives.Add(pooled[r], hidden.Data.Slice((r * tokens + t) * width, width), pooled[r]);
                used++;
            }
            System.Numerics.Tensors.TensorPrimitives.Divide(pooled[r], Math.Max(used, 1), pooled[r]);
        }
        return pooled;
    }

    private static string OpCounts(ModelGraph graph) =>
        string.Join(", ", graph.Scopes.SelectMany(s => s.Nodes).GroupBy(n => n.OpType).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key}x{g.Count()}"));
}
