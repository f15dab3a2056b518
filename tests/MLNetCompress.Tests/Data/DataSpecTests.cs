using MLNetCompress.Data;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Tests.Data;

public class DataSpecTests
{
    private static readonly ModelInputInfo[] Mlp = [new("input", TensorElementType.Float, [-1, 784])];

    [Theory]
    [InlineData("foo:bar", "unknown data spec 'foo:'; expected one of fashion-mnist:DIR[:train|test], images:DIR, npy:FILE, text:FILE, random")]
    [InlineData("foo", "unknown data spec 'foo'; expected one of fashion-mnist:DIR[:train|test], images:DIR, npy:FILE, text:FILE, random")]
    [InlineData("fashion-mnist:", "fashion-mnist needs a path: fashion-mnist:DIR[:train|test]")]
    [InlineData("random?seed=x", "random option seed must be an integer, got 'x'")]
    [InlineData("random?color=red", "unknown option 'color' for random; it takes seed, rows")]
    [InlineData("random?rows=3&rows=4", "random option 'rows' is given twice")]
    [InlineData("random:abc", "random takes no argument, only options: random?seed=1&rows=32 (got 'random:abc')")]
    public void BadSpecs_OneLineMessages(string spec, string message)
    {
        var e = Assert.Throws<DataSpecException>(() => DataSpec.Parse(spec, Mlp));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void FashionMnist_SplitSuffixAndOptions()
    {
        var root = DataTestFiles.TempDir("spec");
        DataTestFiles.FashionFolder(root, "train", n: 3);
        DataTestFiles.FashionFolder(root, "t10k", n: 2);
        var train = (FashionMnistFeed)DataSpec.Parse($"fashion-mnist:{root}:train?mean=0.2860&std=0.3530", Mlp);
        Assert.Equal(FashionMnistSplit.Train, train.Split);
        Assert.Equal(3, train.Count);
        var first = train.Batches(3).Single().Inputs["input"].FloatData[0];
        Assert.Equal((0 / 255f - 0.2860f) / 0.3530f, first, 6);

        var test = DataSpec.Parse($"fashion-mnist:{root}", Mlp);
        Assert.Equal(2, test.Count);
        Assert.StartsWith("fashion-mnist test, 2 rows as [N,784]", test.Description);

        // Relative folders resolve against the base directory.
        var relative = DataSpec.Parse("fashion-mnist:.:test", Mlp, new DataSpecOptions { BaseDirectory = root });
        Assert.Equal(2, relative.Count);
    }

    [Fact]
    public void Random_RowsAndSeed()
    {
        var feed = DataSpec.Parse("random?seed=7&rows=5", Mlp);
        Assert.IsType<RandomFeed>(feed);
        Assert.Equal(5, feed.Count);
    }

    [Fact]
    public void Text_WithoutVocab_SaysHowToGiveOne()
    {
        var file = Path.Combine(DataTestFiles.TempDir("spec"), "s.txt");
        File.WriteAllText(file, "hello\n");
        ModelInputInfo[] bert = [new("input_ids", TensorElementType.Int64, [-1, -1])];
        var e = Assert.Throws<DataSpecException>(() => DataSpec.Parse($"text:{file}", bert));
        Assert.Equal("text needs a BERT vocab.txt: give text:FILE?vocab=PATH (or --vocab)", e.Message);
    }

    [Fact]
    public void Images_UnknownPreset_AndMissingPrepModel()
    {
        var dir = DataTestFiles.TempDir("spec");
        ModelInputInfo[] resnet = [new("data", TensorElementType.Float, [1, 3, 224, 224])];
        var e = Assert.Throws<DataSpecException>(() => DataSpec.Parse($"images:{dir}?preset=vgg", resnet));
        Assert.Equal("unknown images preset 'vgg'; expected resnet, resnet18-mlnet or raw", e.Message);
        e = Assert.Throws<DataSpecException>(() => DataSpec.Parse($"images:{dir}?preset=resnet18-mlnet", resnet));
        Assert.StartsWith("preset resnet18-mlnet needs ResNetPreprocess.onnx", e.Message);
    }
}
