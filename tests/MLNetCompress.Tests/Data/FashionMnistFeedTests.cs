using MLNetCompress.Data;
using MLNetCompress.Testing;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Tests.Data;

public class FashionMnistFeedTests
{
    private static ModelInputInfo[] Flat => [new("input", TensorElementType.Float, [-1, 784])];
    private static ModelInputInfo[] Image => [new("input", TensorElementType.Float, [-1, 1, 28, 28])];

    [Fact]
    public void IdxFile_ReadsGzippedAndPlainHeaders()
    {
        var data = new byte[] { 1, 2, 3, 4, 5, 6 };
        foreach (var gzip in new[] { true, false })
        {
            var idx = IdxFile.Read(new MemoryStream(DataTestFiles.Idx(2051, [1, 2, 3], data, gzip)), "x", IdxFile.ImagesMagic);
            Assert.Equal([1, 2, 3], idx.Dims);
            Assert.Equal(data, idx.Data);
            Assert.Equal(2051, idx.Magic);
        }
    }

    [Fact]
    public void IdxFile_WrongMagic_SaysWhatWasExpected()
    {
        var bytes = DataTestFiles.Idx(2049, [3], [1, 2, 3]);
        var e = Assert.Throws<DataSpecException>(() => IdxFile.Read(new MemoryStream(bytes), "labels.gz", IdxFile.ImagesMagic));
        Assert.Equal("IDX file labels.gz has magic 2049 (labels) where 2051 (images) was expected", e.Message);

        var notIdx = DataTestFiles.Idx(0x12345678, [3], [1, 2, 3]);
        e = Assert.Throws<DataSpecException>(() => IdxFile.Read(new MemoryStream(notIdx), "junk"));
        Assert.Contains("junk", e.Message);
    }

    [Fact]
    public void Feed_ShapesPixelsForEitherLayout_WithLabelsAndNormalisation()
    {
        var dir = DataTestFiles.FashionFolder(DataTestFiles.TempDir("fm"), "t10k", n: 5);

        var flat = new FashionMnistFeed(dir, Flat);
        Assert.Equal(5, flat.Count);
        Assert.True(flat.HasLabels);
        var batches = flat.Batches(2).ToList();
        Assert.Equal([2, 2, 1], batches.Select(b => b.RowCount));
        var t = batches[1].Inputs["input"];
        Assert.Equal([2L, 784], t.Shape);
        // Row 2 (first of batch 1), pixel (y=1, x=2): (2*7 + 3 + 2) % 256 = 19.
        Assert.Equal(19 / 255f, t.FloatData[1 * 28 + 2]);
        Assert.Equal([2, 3], batches[1].Labels!);
        Assert.Equal(["test#2", "test#3"], batches[1].Ids);

        var image = new FashionMnistFeed(dir, Image, mean: 0.5f, std: 0.25f);
        var b0 = image.Batches(8).Single();
        Assert.Equal([5L, 1, 28, 28], b0.Inputs["input"].Shape);
        var p = (4 * 7 + 27 * 3 + 27) % 256;
        Assert.Equal((p / 255f - 0.5f) / 0.25f, b0.Inputs["input"].FloatData[4 * 784 + 27 * 28 + 27], 6);
    }

    [Fact]
    public void Feed_MaxRowsAndFixedBatch()
    {
        var dir = DataTestFiles.FashionFolder(DataTestFiles.TempDir("fm"), "train", n: 7);
        var feed = new FashionMnistFeed(dir, Flat, FashionMnistSplit.Train);
        Assert.Equal(3, feed.Batches(2, maxRows: 3).Sum(b => b.RowCount));

        // A model exported with batch 3 gets full batches of 3 only.
        var fixedFeed = new FashionMnistFeed(dir, [new ModelInputInfo("input", TensorElementType.Float, [3, 784])], FashionMnistSplit.Train);
        Assert.Equal([3, 3], fixedFeed.Batches(32).Select(b => b.RowCount));
    }

    [Fact]
    public void Feed_TruncatedImages_NamesTheFile()
    {
        var dir = DataTestFiles.FashionFolder(DataTestFiles.TempDir("fm"), "t10k", n: 4, imageBytesTruncate: 16 + 4 * 784 - 10);
        var e = Assert.Throws<DataSpecException>(() => new FashionMnistFeed(dir, Flat));
        Assert.Contains("t10k-images-idx3-ubyte.gz is truncated", e.Message);
        Assert.Contains("3126 bytes follow", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Feed_LabelCountMismatch_AndMissingFiles()
    {
        var dir = DataTestFiles.FashionFolder(DataTestFiles.TempDir("fm"), "t10k", n: 4);
        File.WriteAllBytes(Path.Combine(dir, "t10k-labels-idx1-ubyte.gz"), DataTestFiles.Idx(2049, [3], [0, 1, 2]));
        var e = Assert.Throws<DataSpecException>(() => new FashionMnistFeed(dir, Flat));
        Assert.Equal("fashion-mnist test has 4 images but 3 labels", e.Message);

        e = Assert.Throws<DataSpecException>(() => new FashionMnistFeed(dir, Flat, FashionMnistSplit.Train));
        Assert.Contains("has no train-images-idx3-ubyte.gz", e.Message);
    }

    [Fact]
    public void Feed_ModelThatWantsOtherImages_OneLineShapeError()
    {
        var dir = DataTestFiles.FashionFolder(DataTestFiles.TempDir("fm"), "t10k", n: 2);
        ModelInputInfo[] resnet = [new("input", TensorElementType.Float, [-1, 3, 224, 224])];
        var e = Assert.Throws<DataSpecException>(() => new FashionMnistFeed(dir, resnet));
        Assert.Equal("fashion-mnist gives [N,1,28,28] or [N,784] but model input 'input' wants [N,3,224,224]", e.Message);
    }

    [Fact]
    public void BundledSubset_Has1000LabelledRowsOfEachSplit()
    {
        var dir = RealModels.FashionMnistSubset;
        Assert.True(Directory.Exists(dir), $"bundled subset missing: {dir}");
        foreach (var split in new[] { FashionMnistSplit.Test, FashionMnistSplit.Train })
        {
            var feed = new FashionMnistFeed(dir, Image, split);
            Assert.Equal(1000, feed.Count);
            var labels = feed.Batches(256).SelectMany(b => b.Labels!).ToArray();
            Assert.Equal(1000, labels.Length);
            Assert.All(labels, l => Assert.InRange(l, 0, 9));
            Assert.Equal(10, labels.Distinct().Count());
            var pixels = feed.Batches(1000).Single().Inputs["input"].FloatData;
            Assert.InRange(pixels.Min(), 0f, 0f);
            Assert.InRange(pixels.Max(), 0.9f, 1f);
        }
    }
}
