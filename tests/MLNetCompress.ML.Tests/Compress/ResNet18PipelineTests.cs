using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetCompress.Data;
using MLNetCompress.Testing;
using ResNet18Pipeline;
using Xunit.Abstractions;

namespace MLNetCompress.ML.Tests.Compress;

/// <summary>The sample's image pipeline (samples/ResNet18Pipeline) on a few Fashion-MNIST images: LoadImages →
/// ResizeImages → ExtractPixels → ResNetPreprocess → Compress(ResNet18, int8-speed) → SDCA.</summary>
public class ResNet18PipelineTests(ITestOutputHelper output)
{
    [Fact]
    public void CompressedFeaturizer_MatchesTheOriginal_OnUnseenImages_AndTheWholeChainSavesAndLoads()
    {
        var subset = RealModels.FashionMnistSubset;
        var folder = RealModels.TempDir("resnet18-pipeline");
        var trainRows = FashionMnistImages.Write(subset, FashionMnistSplit.Train, 24, folder);
        var testRows = FashionMnistImages.Write(subset, FashionMnistSplit.Test, 16, folder);
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(trainRows);
        var test = ml.Data.LoadFromEnumerable(testRows);

        // Fitted on the training images, which are the calibration data.
        var compress = ImagePipeline.Compressed(ml, ImagePipeline.Int8Recipe(subset));
        var compressed = ImagePipeline.Featurizer(ml, folder, compress).Fit(train);
        var original = ImagePipeline.Featurizer(ml, folder, ImagePipeline.Original(ml)).Fit(train);
        Assert.True(compress.Result!.CompressionRatio > 3.5, $"ratio {compress.Result.CompressionRatio}");

        var a = MnistRows.Column(original.Transform(test), ImagePipeline.Features);
        var b = MnistRows.Column(compressed.Transform(test), ImagePipeline.Features);
        Assert.Equal(512, a[0].Length);
        var cosines = a.Zip(b, (x, y) => MnistRows.Cosine(x, y)).ToArray();
        output.WriteLine($"{compress.Result.BytesBefore:N0} -> {compress.Result.BytesAfter:N0} bytes; features of {cosines.Length} unseen images: " +
                         $"cosine mean {cosines.Average():F4}, min {cosines.Min():F4}");
        Assert.True(cosines.Average() >= 0.99, $"mean cosine {cosines.Average()}");
        Assert.True(cosines.Min() >= 0.98, $"min cosine {cosines.Min()}");

        // The whole chain — image loading, the compressed ResNet18, the classifier — saves and loads like any ML.NET model.
        var classifier = ImagePipeline.Trainer(ml).Fit(ml.Data.Cache(compressed.Transform(train)));
        var chain = compressed.Append(classifier);
        var path = Path.Combine(folder, "pipeline.zip");
        ml.Model.Save(chain, train.Schema, path);
        var loaded = ml.Model.Load(path, out var schema);
        Assert.Equal(train.Schema.Select(c => c.Name), schema.Select(c => c.Name));
        var before = chain.Transform(test).GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().ToArray()).ToArray();
        var after = loaded.Transform(test).GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().ToArray()).ToArray();
        Assert.Equal(before, after);
    }
}
