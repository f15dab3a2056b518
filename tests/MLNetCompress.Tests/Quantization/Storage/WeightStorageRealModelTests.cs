using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.Storage;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Microsoft.ML.OnnxRuntime;
using Xunit.Abstractions;
using static MLNetCompress.Tests.Quantization.Storage.StorageReference;
using static MLNetCompress.Tests.Quantization.WeightStorageChecks;

namespace MLNetCompress.Tests.Quantization.Storage;

/// <summary>Low-bit storage on the real models: the Fashion-MNIST CNN sample (opset 13) and ResNet18 (IR 3, opset 8).</summary>
public class WeightStorageRealModelTests(ITestOutputHelper output)
{
    private static (ModelGraph Original, ModelGraph Stored, string Path, PassResult Result) Store(string modelPath, WeightStorageOptions options)
    {
        var original = ModelGraph.Load(modelPath);
        var graph = ModelGraph.Load(modelPath);
        var result = PassManager.Run(graph, [new WeightStoragePass(options)])[0];
        var path = System.IO.Path.Combine(RealModels.TempDir("storage-real"),
            $"{System.IO.Path.GetFileNameWithoutExtension(modelPath)}.{options.Format.Name()}-{options.BlockSize}-{options.Clip}.onnx");
        graph.Save(path);
        return (original, graph, path, result);
    }

    [Theory]
    [InlineData(StorageFormat.Int4, null, false)]
    [InlineData(StorageFormat.Int2, null, true)]
    [InlineData(StorageFormat.Binary, 64, false)]
    public void CnnSample_FoldsToFloat_OutputsEqualTheDequantizedReference_AndShrinks(StorageFormat format, int? block, bool clip)
    {
        var (original, stored, path, result) = Store(RealModels.CnnSample, new WeightStorageOptions { Format = format, BlockSize = block, Clip = clip });
        Assert.True(result.Modified);

        // Every stored Conv/Gemm weight decodes by hand to the formula's quantization (Gemm has transB=1: axis 0 like Conv).
        var weights = new Dictionary<string, float[]>();
        foreach (var n in original.Main.Nodes.Where(n => n.OpType is "Conv" or "Gemm"))
        {
            var before = original.Main.Initializer(n.Input[1])!;
            if (stored.Main.Initializer(before.Name) is not null) continue; // small, left in float
            var dims = before.Dims.ToArray();
            var s = Read(stored, before.Name, format);
            weights[before.Name] = Dequantize(s, dims, 0);
            // Clipped scales are checked against their own bounds in LowBitQuantizerTests.
            if (!clip) AssertBound(TensorData.ToFloatArray(before), weights[before.Name], s, dims, 0, format);
        }
        Assert.True(weights.Count >= 3, $"{weights.Count} weights stored");

        foreach (var level in new[] { GraphOptimizationLevel.ORT_ENABLE_BASIC, GraphOptimizationLevel.ORT_ENABLE_EXTENDED })
            WeightStoragePassTests.AssertFoldedToFloat(path, RealModels.CnnSample, level);

        // Logits equal, bit for bit, those of the float model holding the hand-dequantized weights.
        var reference = WithWeights(File.ReadAllBytes(RealModels.CnnSample), weights);
        using var a = ModelRunner.Load(RealModels.CnnSample);
        using var r = ModelRunner.Load(reference);
        using var b = ModelRunner.Load(path);
        var feed = new FashionMnistFeed(RealModels.FashionMnistSubset, a.Inputs);
        int rows = 0, correctFloat = 0, correctStored = 0;
        foreach (var batch in feed.Batches(250, 1000))
        {
            var ya = a.Run(batch).Outputs[0].Data.ToArray();
            var yr = r.Run(batch).Outputs[0].Data.ToArray();
            var yb = b.Run(batch).Outputs[0].Data.ToArray();
            AssertExactlyEqual([yr], [yb]);
            for (int k = 0; k < batch.RowCount; k++)
            {
                if (System.Numerics.Tensors.TensorPrimitives.IndexOfMax(ya.AsSpan(k * 10, 10)) == batch.Labels![k]) correctFloat++;
                if (System.Numerics.Tensors.TensorPrimitives.IndexOfMax(yb.AsSpan(k * 10, 10)) == batch.Labels![k]) correctStored++;
            }
            rows += batch.RowCount;
        }
        long sizeBefore = OnnxModelIO.SizeOnDisk(RealModels.CnnSample), sizeAfter = OnnxModelIO.SizeOnDisk(path);
        output.WriteLine($"CNN {format.Name()} block {block?.ToString() ?? "-"}{(clip ? " clipped" : "")}: {sizeBefore} -> {sizeAfter} bytes ({(double)sizeBefore / sizeAfter:F2}x); " +
                         $"accuracy on the {rows} bundled test images {(double)correctFloat / rows:P1} -> {(double)correctStored / rows:P1}");
        double minRatio = format switch { StorageFormat.Int4 => 7, StorageFormat.Int2 => 13, _ => 18 };
        Assert.True(sizeBefore >= minRatio * sizeAfter, $"{sizeBefore} -> {sizeAfter}");
        if (format == StorageFormat.Int4) Assert.True(correctStored >= correctFloat - 0.02 * rows, $"int4 accuracy {correctStored} vs {correctFloat} of {rows}");
    }

    [Fact]
    public void ResNet18_Ir3Opset8_Int4Blocks_FoldsAtLoad_KeepsTheOpset_AndFeaturesAgree()
    {
        // Blocks of 32: per-channel int4 of ResNet18's unfolded (pre-BatchNorm) weights keeps a feature cosine of only about 0.74.
        var (original, stored, path, result) = Store(RealModels.ResNet18, new WeightStorageOptions { Format = StorageFormat.Int4, BlockSize = 32 });
        Assert.True(result.Modified);
        Assert.Equal((3L, 8L), (stored.IrVersion, stored.OnnxOpset));
        int convs = original.Main.Nodes.Count(n => n.OpType == "Conv");
        Assert.Equal(convs, result.Changes.Count);

        // Folded at load: same ops as the float model's optimized graph, every weight a float initializer.
        var optimized = WeightStoragePassTests.AssertFoldedToFloat(path, RealModels.ResNet18, GraphOptimizationLevel.ORT_ENABLE_EXTENDED);
        Assert.Equal(convs, AssertFolded(optimized, "Conv", "FusedConv"));

        using var a = ModelRunner.Load(RealModels.ResNet18);
        using var b = ModelRunner.Load(path);
        var photos = new ImageFolderFeed(Path.Combine(RealModels.SamplesDir, "images"), ImagePreprocessing.ResNet18MLNet(RealModels.ResNetPreprocess), a.Inputs);
        var cosines = photos.Batches(1).Select(batch => Cosine(a.Run(batch).Outputs[0].Data, b.Run(batch).Outputs[0].Data)).ToList();
        long sizeBefore = OnnxModelIO.SizeOnDisk(RealModels.ResNet18), sizeAfter = OnnxModelIO.SizeOnDisk(path);
        output.WriteLine($"ResNet18 int4 blocks of 32: {sizeBefore} -> {sizeAfter} bytes ({(double)sizeBefore / sizeAfter:F2}x); " +
                         $"feature cosine on the 6 photos min {cosines.Min():F4}, mean {cosines.Average():F4}");
        Assert.Equal(6, cosines.Count);
        Assert.True(sizeBefore >= 6 * sizeAfter, $"{sizeBefore} -> {sizeAfter}");
        Assert.True(cosines.Average() > 0.88 && cosines.Min() > 0.75, $"cosines {string.Join(", ", cosines)}");
    }
}
