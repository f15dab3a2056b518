using MLNetCompress.Data;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Tests.Data;

public class ImageFolderFeedTests
{
    private static ModelInputInfo[] Nchw(long size) => [new("data", TensorElementType.Float, [-1, 3, size, size])];

    private static string Folder(params (string Name, byte[] Png)[] files)
    {
        var dir = DataTestFiles.TempDir("img");
        foreach (var (name, png) in files) File.WriteAllBytes(Path.Combine(dir, name), png);
        return dir;
    }

    // Smooth gradients plus a deterministic texture, so resizing has something to average.
    private static byte[] Photo(int w, int h, int seed) => DataTestFiles.Png(w, h, (x, y) =>
        ((byte)((x * 255 / w + seed * 40) % 256), (byte)(y * 255 / h), (byte)((x * 31 + y * 17 + seed * 13) % 256)));

    [Fact]
    public void ConstantImage_StaysConstant_PlanarRgb()
    {
        var dir = Folder(("a.png", DataTestFiles.Png(50, 40, (_, _) => (200, 100, 7))));
        var feed = new ImageFolderFeed(dir, ImagePreprocessing.Raw(16), Nchw(16));
        var t = feed.Batches(4).Single().Inputs["data"];
        Assert.Equal([1L, 3, 16, 16], t.Shape);
        Assert.All(t.FloatData[..256], v => Assert.Equal(200f, v));
        Assert.All(t.FloatData[256..512], v => Assert.Equal(100f, v));
        Assert.All(t.FloatData[512..], v => Assert.Equal(7f, v));
    }

    [Fact]
    public void Downscale_UsesPilsAntialiasedBilinearWeights()
    {
        // Columns 0, 30, ..., 210; halving uses weights 1/8 3/8 3/8 1/8 (renormalised at the edges).
        var dir = Folder(("s.png", DataTestFiles.Png(8, 8, (x, _) => ((byte)(x * 30), 0, 0))));
        var t = new ImageFolderFeed(dir, ImagePreprocessing.Raw(4), Nchw(4)).Batches(1).Single().Inputs["data"].FloatData;
        float[] expected = [MathF.Round(150f / 7), 75, 135, MathF.Round(330f / 1.75f)];
        for (var y = 0; y < 4; y++) Assert.Equal(expected, t[(y * 4)..(y * 4 + 4)]);
    }

    [Fact]
    public void ResizeShorterThenCenterCrop()
    {
        // 40x20: shorter side 20 -> 10 gives 20x10; the center 10x10 crop keeps source columns 10..29.
        var dir = Folder(("w.png", DataTestFiles.Png(40, 20, (x, _) => (x is >= 10 and < 30 ? (byte)250 : (byte)0, 0, 0))));
        var t = new ImageFolderFeed(dir, ImagePreprocessing.Raw(10), Nchw(10)).Batches(1).Single().Inputs["data"].FloatData;
        Assert.InRange(t[5 * 10 + 5], 249f, 250f);
        Assert.True(t[5 * 10 + 0] < 250f && t[5 * 10 + 0] > 100f, "edge columns blend with the cropped-away black");
    }

    [Fact]
    public void ResNet18MLNetPreset_MatchesRunningResNetPreprocessOnnx()
    {
        var files = new List<(string, byte[])> { ("p1.png", Photo(300, 250, 1)), ("p2.png", Photo(230, 400, 2)) };
        var dir = Folder(files.ToArray());
        var photos = Path.Combine(RealModels.SamplesDir, "images");
        if (Directory.Exists(photos))
            foreach (var f in Directory.EnumerateFiles(photos).Where(f => f.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".png", StringComparison.OrdinalIgnoreCase)).Take(3))
                File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));

        var preset = ImagePreprocessing.ResNet18MLNet(RealModels.ResNetPreprocess);
        Assert.True(preset.Bgr);
        var mlnet = new ImageFolderFeed(dir, preset, Nchw(224)).Batches(1).ToList();
        var raw = new ImageFolderFeed(dir, ImagePreprocessing.Raw(224), Nchw(224)).Batches(1).ToList();
        Assert.Equal(raw.Count, mlnet.Count);

        using var prep = ModelRunner.Load(RealModels.ResNetPreprocess);
        for (var i = 0; i < raw.Count; i++)
        {
            var expected = prep.Run(new Dictionary<string, NamedTensor> { ["OriginalInput"] = raw[i].Inputs["data"] }).Outputs[0].Data.ToArray();
            var actual = mlnet[i].Inputs["data"].FloatData;
            Assert.Equal(expected.Length, actual.Length);
            var maxDiff = 0f;
            for (var k = 0; k < actual.Length; k++) maxDiff = Math.Max(maxDiff, Math.Abs(expected[k] - actual[k]));
            Assert.True(maxDiff < 1e-4f, $"{raw[i].Ids[0]}: max diff {maxDiff}");
        }
    }

    [Fact]
    public void ResNet18MLNetSpec_FindsPrepBesideTheModel_AndRunsResNet18()
    {
        var dir = Folder(("a.png", Photo(256, 256, 3)), ("b.png", Photo(320, 240, 4)));
        using var resnet = ModelRunner.Load(RealModels.ResNet18);
        var feed = DataSpec.Parse($"images:{dir}?preset=resnet18-mlnet", resnet.Session, new DataSpecOptions { ModelPath = RealModels.ResNet18 });
        // ResNet18.onnx is exported with batch 1: batches of 1 whatever is asked.
        var batches = feed.Batches(8).ToList();
        Assert.Equal([1, 1], batches.Select(b => b.RowCount));
        Assert.Equal(["a.png", "b.png"], batches.Select(b => b.Ids[0]));
        var features = resnet.Run(batches[0])["Pooling395_Output_0"];
        Assert.Equal([1L, 512, 1, 1], features.Shape);
        Assert.All(features.Data.ToArray(), v => Assert.True(float.IsFinite(v) && v >= 0));
    }

    [Fact]
    public void NhwcModel_GetsInterleavedChannels_AndResnetPresetNormalises()
    {
        var dir = Folder(("c.png", DataTestFiles.Png(30, 30, (_, _) => (255, 0, 128))));
        ModelInputInfo[] nhwc = [new("img", TensorElementType.Float, [-1, 8, 8, 3])];
        var feed = (ImageFolderFeed)DataSpec.Parse($"images:{dir}", nhwc);
        Assert.Equal(8, feed.Preprocessing.CropSize);
        var t = feed.Batches(1).Single().Inputs["img"];
        Assert.Equal([1L, 8, 8, 3], t.Shape);
        Assert.Equal((1f - 0.485f) / 0.229f, t.FloatData[0], 5);
        Assert.Equal((0f - 0.456f) / 0.224f, t.FloatData[1], 5);
        Assert.Equal((128 / 255f - 0.406f) / 0.225f, t.FloatData[2], 5);
    }

    [Fact]
    public void WrongSize_AndUndecodableFile_AreOneLineErrors()
    {
        var dir = Folder(("a.png", DataTestFiles.Png(10, 10, (_, _) => (1, 2, 3))));
        var e = Assert.Throws<DataSpecException>(() => DataSpec.Parse($"images:{dir}?size=224", Nchw(32)));
        Assert.Equal("images gives [N,3,224,224] but model input 'data' wants [N,3,32,32]", e.Message);

        File.WriteAllBytes(Path.Combine(dir, "b.jpg"), [0xFF, 0xD8, 0xFF, 0x00, 0x01]);
        var feed = DataSpec.Parse($"images:{dir}?preset=raw", Nchw(8));
        e = Assert.Throws<DataSpecException>(() => feed.Batches(2).ToList());
        Assert.StartsWith($"image {Path.Combine(dir, "b.jpg")} could not be decoded", e.Message);
    }
}
