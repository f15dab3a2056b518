using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.Dynamic;
using MLNetCompress.Quantization.KernelSafety;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Microsoft.ML.OnnxRuntime;
using Xunit.Abstractions;

namespace MLNetCompress.Tests.Quantization.KernelSafety;

/// <summary>
/// Int8 models against an independent simulation of the int16 pair-sum saturation of x86 CPUs without VNNI
/// (<see cref="Avx2PairSumSimulator"/>), and ONNX Runtime's integer kernels against its float reference ops. The
/// simulation does not depend on the CPU the tests run on; the ONNX Runtime checks do, and are the ones the emulated run
/// (<c>tools/cpu-emulation/dotnet-avx2</c>, tests in category <c>Int8Kernels</c>) repeats on a CPU without VNNI.
/// </summary>
public class PairSumSaturationTests(ITestOutputHelper output)
{
    private const OnnxDataType F = OnnxDataType.Float;

    /// <summary>
    /// x[1,8,10,10] in [0, 1] → Conv(8→6, 3×3, all-positive weights) → Relu → Conv(6→4, 1×1) → y. The first conv's codes
    /// are near 255 and its weights near 127: on a u8×s8 kernel without VNNI, most pairs would clip.
    /// </summary>
    private static (byte[] Model, NpyFeed Feed) SaturatingConvs(int rows = 4)
    {
        var w1 = TestTensors.RandomValues(6 * 8 * 9, 11).Select(v => 0.6f + 0.4f * MathF.Abs(v)).ToArray();
        var bytes = TestModels.Model(13)
            .Input("x", F, "batch", 8, 10, 10)
            .Initializer(TestTensors.Float("w1", [6, 8, 3, 3], w1))
            .Initializer(TestTensors.Random("w2", [4, 6, 1, 1], 12))
            .Node("Conv", ["x", "w1"], ["c1"], "conv1", "", Attr.Ints("pads", 1, 1, 1, 1))
            .Node("Relu", ["c1"], ["r1"], "relu1")
            .Node("Conv", ["r1", "w2"], ["y"], "conv2")
            .Output("y", F, "batch", 4, 10, 10)
            .ToBytes();
        // Most inputs near the top of the range, a few zeros so the range starts at 0.
        var x = TestTensors.RandomValues(rows * 800, 13).Select((v, i) => i % 97 == 0 ? 0f : 0.8f + 0.2f * MathF.Abs(v)).ToArray();
        using var runner = ModelRunner.Load(bytes);
        return (bytes, Feed(x, [rows, 8, 10, 10], runner));
    }

    private static NpyFeed Feed(float[] data, long[] shape, ModelRunner runner)
    {
        using var stream = new MemoryStream();
        NpyArray.Write(stream, data, shape);
        stream.Position = 0;
        return new NpyFeed(NpyArray.Read(stream, "x.npy"), runner.Inputs);
    }

    private static byte[] Quantize(byte[] model, IDataFeed calibration, PairSumGuard guard, bool perChannel = true)
    {
        var graph = ModelGraph.FromBytes(model);
        var options = new QdqOptions
        {
            Calibration = calibration,
            Guard = guard,
            PerChannel = perChannel,
            CalibrationSettings = new CalibrationOptions { MaxRows = 4, BatchSize = 1 },
            // Every layer int8, whatever this CPU's timings say: the kernels are what is checked.
            KeepFloatWhereSlower = false,
        };
        PassManager.Run(graph, QdqRecipe.Passes(graph.OnnxOpset, options));
        return graph.ToBytes();
    }

    [Fact]
    public void WithoutAGuard_TheSimulationSeesPairsClip_SoItCanSeeThem()
    {
        var (model, feed) = SaturatingConvs();
        var quantized = Quantize(model, feed, PairSumGuard.None);
        var layers = Avx2PairSumSimulator.Run(quantized, feed, rows: 2);
        var conv1 = layers.Single(l => l.Layer == "conv1");
        output.WriteLine($"unguarded conv1: {conv1.Saturated:N0} of {conv1.Pairs:N0} pairs clip ({conv1.SaturatedShare:P1}), largest pair {conv1.LargestPair:N0}, " +
                         $"accumulator error up to {conv1.LargestAccumulatorError:P1}");
        Assert.True(conv1.SaturatedShare > 0.5, $"{conv1.SaturatedShare:P1} of pairs clip");
        Assert.True(conv1.LargestPair > 50_000, $"largest pair {conv1.LargestPair}");
        Assert.True(conv1.LargestAccumulatorError > 0.1, $"accumulator error {conv1.LargestAccumulatorError}");
    }

    [Theory]
    [Trait("Category", "Int8Kernels")]
    [InlineData(PairSumGuard.PairSafeWeights, true)]
    [InlineData(PairSumGuard.PairSafeWeights, false)]
    [InlineData(PairSumGuard.SevenBitWeights, true)]
    [InlineData(PairSumGuard.ReducedRangeActivations, true)]
    [InlineData(PairSumGuard.Uint8Weights, true)]
    public void EveryGuard_KeepsEveryPairInsideInt16_AndOrtsIntegerKernelsMatchItsFloatReference(PairSumGuard guard, bool perChannel)
    {
        var (model, feed) = SaturatingConvs();
        var quantized = Quantize(model, feed, guard, perChannel);
        var layers = Avx2PairSumSimulator.Run(quantized, feed, rows: 4);
        var conv1 = layers.Single(l => l.Layer == "conv1");
        output.WriteLine($"{guard}: conv1 largest pair {conv1.LargestPair:N0}, {conv1.Saturated} of {conv1.Pairs:N0} clip");
        Assert.Equal(0, conv1.Saturated);
        // uint8 weights run on U8U8 kernels, which widen to 16 bits before multiplying: their pairs may exceed int16.
        if (guard != PairSumGuard.Uint8Weights) Assert.True(conv1.LargestPair <= short.MaxValue);

        // ONNX Runtime's fused QLinearConv (integer kernels of this CPU) against the same file with every optimization off
        // (DequantizeLinear → float Conv → QuantizeLinear, computed in float): on any CPU they may differ by a rounding of
        // the requantized output, never by a clipped accumulator.
        var fused = Outputs(quantized, GraphOptimizationLevel.ORT_ENABLE_ALL, feed);
        var reference = Outputs(quantized, GraphOptimizationLevel.ORT_DISABLE_ALL, feed);
        float peak = reference.Max(MathF.Abs);
        double worst = reference.Zip(fused, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"{guard}: max |fused − float reference| {worst:G3} (peak {peak:G3})");
        Assert.True(worst <= 0.02 * peak, $"fused kernels differ by {worst} (peak {peak})");
    }

    private static float[] Outputs(byte[] model, GraphOptimizationLevel level, IDataFeed feed)
    {
        using var runner = ModelRunner.Load(model, new RuntimeOptions(GraphOptimizationLevel: level));
        return feed.Batches(4).SelectMany(b => runner.Run(b).Outputs[0].Data.ToArray()).ToArray();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DynamicQuantization_IsGuardedToo(bool perChannel)
    {
        // x[6,64] Gaussian → MatMul[64,48] → Relu → MatMul[48,40]: DynamicQuantizeLinear gives codes across 0..255.
        var bytes = TestModels.Model(13)
            .Input("x", F, 6, 64)
            .Initializer(TestTensors.Random("W1", [64, 48], 1))
            .Initializer(TestTensors.Random("W2", [48, 40], 2))
            .Node("MatMul", ["x", "W1"], ["h"], "mm1")
            .Node("Relu", ["h"], ["r"])
            .Node("MatMul", ["r", "W2"], ["y"], "mm2")
            .Output("y", F, 6, 40)
            .ToBytes();
        var x = TestTensors.RandomValues(6 * 64, 5).Select(v => 3 * v).ToArray();
        using var runner = ModelRunner.Load(bytes);
        var feed = Feed(x, [6, 64], runner);
        byte[] Quantized(PairSumGuard guard)
        {
            var graph = ModelGraph.FromBytes(bytes);
            PassManager.Run(graph, [new DynamicQuantizationPass(new DynamicQuantizationOptions { PerChannel = perChannel, Guard = guard, MinElements = 0 })]);
            return graph.ToBytes();
        }
        var unguarded = Avx2PairSumSimulator.Run(Quantized(PairSumGuard.None), feed, rows: 6);
        var guarded = Avx2PairSumSimulator.Run(Quantized(PairSumGuard.PairSafeWeights), feed, rows: 6);
        output.WriteLine(string.Join("; ", unguarded.Select(l => $"unguarded {l.Layer}: {l.Saturated} of {l.Pairs} clip, largest pair {l.LargestPair}")));
        output.WriteLine(string.Join("; ", guarded.Select(l => $"guarded {l.Layer}: {l.Saturated} of {l.Pairs} clip, largest pair {l.LargestPair}")));
        Assert.Equal(2, guarded.Count);
        Assert.True(unguarded.Sum(l => l.Saturated) > 0);
        Assert.All(guarded, l => Assert.Equal(0, l.Saturated));
    }

    [Fact]
    public void ResNet18_DefaultStaticInt8_NeverClips_OnPhotosItWasNotCalibratedOn()
    {
        var path = RealModels.ResNet18;
        using var runner = ModelRunner.Load(path);
        var specOptions = new DataSpecOptions { ModelPath = path, PreprocessModelPath = RealModels.ResNetPreprocess };
        var (calibrationDir, evalDir) = (PhotoFolder(["astronaut.jpg", "coffee.jpg", "rocket.jpg"]), PhotoFolder(["chelsea.jpg", "retina.jpg"]));
        try
        {
            var calibration = DataSpec.Parse($"images:{calibrationDir}?preset=resnet18-mlnet", runner.Session, specOptions);
            var eval = DataSpec.Parse($"images:{evalDir}?preset=resnet18-mlnet", runner.Session, specOptions);
            var model = File.ReadAllBytes(path);
            // The first layer: its input codes sit around the zero point 114 and above (photos minus the mean image).
            var unguarded = Avx2PairSumSimulator.Run(Quantize(model, calibration, PairSumGuard.None), eval, rows: 1, onlyFirst: 1)[0];
            output.WriteLine($"unguarded {unguarded.Layer}: {unguarded.SaturatedShare:P2} of {unguarded.Pairs:N0} pairs clip, largest pair {unguarded.LargestPair:N0}");
            Assert.True(unguarded.Saturated > 0);

            // The defaults, as every front end uses them.
            var layers = Avx2PairSumSimulator.Run(Quantize(model, calibration, new QdqOptions { Calibration = calibration }.Guard), eval, rows: 1);
            foreach (var l in layers) output.WriteLine($"guarded {l.Layer}: largest pair {l.LargestPair:N0}, {l.Saturated} clip");
            Assert.Equal(22, layers.Count); // every conv of ResNet18 runs on integer kernels
            Assert.All(layers, l => Assert.Equal(0, l.Saturated));
            Assert.All(layers, l => Assert.True(l.LargestPair <= short.MaxValue));
        }
        finally
        {
            Directory.Delete(calibrationDir, recursive: true);
            Directory.Delete(evalDir, recursive: true);
        }
    }

    private static string PhotoFolder(string[] files)
    {
        var dir = Path.Combine(RealModels.TempDir("pair-sum-photos"), Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        foreach (var f in files) File.Copy(Path.Combine(RealModels.SamplesDir, "images", f), Path.Combine(dir, f));
        return dir;
    }
}
