using MLNetCompress.Data;
using MLNetCompress.Packing;
using MLNetCompress.Recipes;
using MLNetCompress.Reporting;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Xunit.Abstractions;

namespace MLNetCompress.Tests.Recipes;

/// <summary>
/// onnx-samples/recipes/resnet18-8x.json on ResNet18, the issue's benchmark: packed, at least 8x smaller than the fp32
/// file, with the 512 features of the model unpacked from the container at cosine 0.98 or more against the original's on
/// the bundled photos. The recipe reads no data, so every photo is held out (verification used random probes).
/// </summary>
public class ResNet18EightTimesRecipeTests(ITestOutputHelper output)
{
    [Fact]
    public void ResNet18_Packed_IsOver8xSmaller_AndItsFeaturesHoldOnThePhotos()
    {
        var recipe = Recipe.Load(Path.Combine(RealModels.SamplesDir, "recipes", "resnet18-8x.json"));
        Assert.False(recipe.NeedsCalibration);
        var resnet = RealModels.ResNet18;
        var dir = RealModels.TempDir("recipe-resnet18-8x");
        var onnx = Path.Combine(dir, "resnet18.8x.onnx");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = RecipeRunner.Run(resnet, recipe, new RecipeRunOptions { OutputPath = onnx });
        var compressed = clock.Elapsed;
        var mlcz = Path.Combine(dir, "resnet18.8x.mlcz");
        ModelPacker.PackFile(onnx, mlcz);
        output.WriteLine($"compress {compressed.TotalSeconds:F1} s, pack {(clock.Elapsed - compressed).TotalSeconds:F1} s");
        long original = new FileInfo(resnet).Length, packed = new FileInfo(mlcz).Length;
        var stages = SizeStage.WithPack(result.Stages, result.BytesBefore, packed, mlcz);
        output.WriteLine(string.Join("; ", stages.Select(s => $"{s.Name} {s.Bytes:N0} B ({s.Ratio:F2}x)")));
        Assert.True(original >= 8 * packed, $"{original:N0} -> {packed:N0} bytes packed ({(double)original / packed:F2}x)");
        Assert.Equal((double)original / packed, stages[^1].Ratio, 12);

        // Features of the model as the container gives it back, photo by photo.
        var photos = DataSpec.Parse($"images:{Path.Combine(RealModels.SamplesDir, "images")}?preset=resnet18-mlnet",
            ModelRunner.Load(resnet).Inputs, new DataSpecOptions { ModelPath = resnet, PreprocessModelPath = RealModels.ResNetPreprocess });
        using var before = ModelRunner.Load(resnet);
        using var after = ModelRunner.Load(PackedModel.Load(mlcz));
        var cosines = new List<double>();
        foreach (var batch in photos.Batches(3))
        {
            var (x, y) = (before.Run(batch).Outputs[0], after.Run(batch).Outputs[0]);
            for (int r = 0; r < x.Rows; r++)
            {
                ReadOnlySpan<float> a = x.Row(r), b = y.Row(r);
                Assert.Equal(512, a.Length);
                double dot = 0, na = 0, nb = 0;
                for (int i = 0; i < a.Length; i++) { dot += (double)a[i] * b[i]; na += (double)a[i] * a[i]; nb += (double)b[i] * b[i]; }
                cosines.Add(dot / Math.Sqrt(na * nb));
            }
        }
        output.WriteLine($"feature cosine on {cosines.Count} photos: mean {cosines.Average():F4}, min {cosines.Min():F4} ({string.Join(", ", cosines.Select(c => c.ToString("F4")))})");
        Assert.Equal(Directory.GetFiles(Path.Combine(RealModels.SamplesDir, "images")).Length, cosines.Count);
        Assert.True(cosines.Average() >= 0.98, $"mean feature cosine {cosines.Average():F4}");
        // Measured 0.981 on the worst photo; a little room for k-means on another CPU's SIMD width.
        Assert.True(cosines.Min() >= 0.975, $"lowest feature cosine {cosines.Min():F4}");
    }
}
