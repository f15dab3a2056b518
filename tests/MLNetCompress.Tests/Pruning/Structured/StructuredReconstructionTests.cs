using MLNetCompress.Calibration;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Pruning.Structured;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using static MLNetCompress.Tests.Pruning.PruningChecks;
using static MLNetCompress.Tests.Pruning.Structured.StructuredPruningPassTests;

namespace MLNetCompress.Tests.Pruning.Structured;

public class StructuredReconstructionTests
{
    private const OnnxDataType F = OnnxDataType.Float;

    private static IDataFeed RandomRows(byte[] model, int rows)
    {
        using var runner = ModelRunner.Load(model);
        return new RandomFeed(runner.Inputs, rows, seed: 7);
    }

    private static double MaxAbsDiff(byte[] a, byte[] b, long[] shape)
    {
        int n = (int)shape.Aggregate(1L, (x, y) => x * y);
        var inputs = new Dictionary<string, NamedTensor> { ["x"] = new NamedTensor(TestTensors.RandomValues(n, 99), shape) };
        var ya = WeightStorageRun(a, inputs);
        var yb = WeightStorageRun(b, inputs);
        return ya.Zip(yb, (p, q) => (double)Math.Abs(p - q)).Max();
    }

    private static float[] WeightStorageRun(byte[] model, Dictionary<string, NamedTensor> inputs) =>
        Quantization.WeightStorageChecks.Run(model, inputs)[0];

    [Fact]
    public void AChannelThatIsALinearMixOfOthers_IsRebuiltExactly_IntoTheConsumerWeightsAndANewBias()
    {
        // Filter 7 = 0.1·filter 0 + 0.05·filter 1, and its bias adds 0.02: its output is exactly 0.1·x0 + 0.05·x1 + const,
        // so folding that into the 1×1 consumer (which has no bias yet) gives back the original output.
        var w1 = TestTensors.RandomValues(8 * 27, 61);
        var b1 = TestTensors.RandomValues(8, 62);
        for (int i = 0; i < 27; i++) w1[7 * 27 + i] = 0.1f * w1[i] + 0.05f * w1[27 + i];
        b1[7] = 0.1f * b1[0] + 0.05f * b1[1] + 0.02f;
        var model = TestModels.Model()
            .Input("x", F, "batch", 3, 6, 6)
            .Initializer(TestTensors.Float("W1", [8, 3, 3, 3], w1))
            .Initializer(TestTensors.Float("B1", [8], b1))
            .Initializer(TestTensors.Random("W2", [4, 8, 1, 1], 63))
            .Node("Conv", ["x", "W1", "B1"], ["c1"], "conv1", "", Attr.Ints("kernel_shape", 3, 3), Attr.Ints("pads", 1, 1, 1, 1))
            .Node("Conv", ["c1", "W2"], ["y"], "conv2", "", Attr.Ints("kernel_shape", 1, 1))
            .Output("y", F, "batch", 4, 6, 6)
            .ToBytes();
        var options = new StructuredPruningOptions { Fraction = 1.0 / 8, KeepAtLeast = 1 };
        var (plain, plainPlan, _) = Prune(model, options);
        Assert.Equal([7], plainPlan.Groups.Single().Removed);
        var (rebuilt, plan, _) = Prune(model, options with { Reconstruct = true, Calibration = RandomRows(model, 32), Damping = 1e-7 });
        Assert.Equal([7], plan.Groups.Single().Removed);
        Assert.True(plan.Groups.Single().ExplainedVariance > 0.999);

        var conv2 = rebuilt.Main.Nodes.Single(n => n.Name == "conv2");
        Assert.Equal(3, conv2.Input.Count); // the constant term needed a bias
        double without = MaxAbsDiff(model, plain.ToBytes(), [2, 3, 6, 6]);
        double with = MaxAbsDiff(model, rebuilt.ToBytes(), [2, 3, 6, 6]);
        Assert.True(without > 0.05, $"dropping the channel should change the output, max diff {without}");
        Assert.True(with < 1e-3, $"the rebuilt model differs by {with}");
    }

    [Fact]
    public void ReconstructionCriterion_RemovesAChannelTheOthersExplain_WhereL1RemovesTheSmallIndependentOne()
    {
        // Filter 5 = 2·filter 0 − 1.5·filter 1 (large L1 norms, but no information of their own); filter 3 is small and independent.
        var w1 = TestTensors.RandomValues(8 * 27, 71);
        var b1 = TestTensors.RandomValues(8, 72);
        for (int i = 0; i < 27; i++) { w1[5 * 27 + i] = 2 * w1[i] - 1.5f * w1[27 + i]; w1[3 * 27 + i] *= 0.05f; }
        b1[5] = 2 * b1[0] - 1.5f * b1[1];
        var model = TestModels.Model()
            .Input("x", F, "batch", 3, 6, 6)
            .Initializer(TestTensors.Float("W1", [8, 3, 3, 3], w1))
            .Initializer(TestTensors.Float("B1", [8], b1))
            .Initializer(TestTensors.Random("W2", [4, 8, 1, 1], 73))
            .Initializer(TestTensors.Random("B2", [4], 74))
            .Node("Conv", ["x", "W1", "B1"], ["c1"], "conv1", "", Attr.Ints("kernel_shape", 3, 3), Attr.Ints("pads", 1, 1, 1, 1))
            .Node("Conv", ["c1", "W2", "B2"], ["y"], "conv2", "", Attr.Ints("kernel_shape", 1, 1))
            .Output("y", F, "batch", 4, 6, 6)
            .ToBytes();
        var data = RandomRows(model, 32);
        var (_, l1, _) = Prune(model, new StructuredPruningOptions { Fraction = 1.0 / 8, KeepAtLeast = 1 });
        Assert.Equal([3], l1.Groups.Single().Removed);
        var (rebuilt, obs, _) = Prune(model, new StructuredPruningOptions
        {
            Fraction = 1.0 / 8, KeepAtLeast = 1, Criterion = ChannelCriterion.Reconstruction, Reconstruct = true, Calibration = data, Damping = 1e-7,
        });
        // 0, 1 and 5 are each a mix of the other two: removing any one of them loses nothing.
        Assert.Contains(obs.Groups.Single().Removed.Single(), new[] { 0, 1, 5 });
        Assert.True(MaxAbsDiff(model, rebuilt.ToBytes(), [2, 3, 6, 6]) < 1e-3);
        Assert.Throws<ArgumentException>(() => new StructuredPruningPass(new StructuredPruningOptions
        { Fraction = 0.3, Criterion = ChannelCriterion.Reconstruction, Calibration = data }));
    }

    [Fact]
    public void Cnn_Reconstruction_KeepsTheLogitsCloserThanPlainRemoval_AndTheModelIsSmallerAndRuns()
    {
        var model = File.ReadAllBytes(RealModels.CnnSample);
        var calibration = SubsetFeed(RealModels.CnnSample, "train");
        var settings = new CalibrationOptions { MaxRows = 300, BatchSize = 100, MaxVectorsPerRow = 64 };
        var options = new StructuredPruningOptions { Fraction = 0.5 };
        var (plain, plainPlan, _) = Prune(model, options);
        var (rebuilt, plan, result) = Prune(model, options with { Reconstruct = true, Calibration = calibration, CalibrationSettings = settings });

        // Both convs and the hidden Gemm lose half their outputs; the last Gemm writes the graph output.
        Assert.Equal(3, plan.Groups.Count);
        Assert.All(plan.Groups, g => Assert.Equal(g.ChannelsBefore / 2, g.ChannelsAfter));
        Assert.Contains(result.Skipped, s => s.Contains("logits"));
        var after = Weights(rebuilt.ToBytes());
        Assert.Equal([16L, 1, 3, 3], after["features.0.weight"].Dims);
        Assert.Equal([32L, 16, 3, 3], after["features.3.weight"].Dims);
        Assert.Equal([128L, 32 * 49], after["classifier.1.weight"].Dims);
        Assert.Equal([10L, 128], after["classifier.4.weight"].Dims);

        var test = SubsetFeed(RealModels.CnnSample);
        var eval = new EvalOptions { BatchSize = 250, WarmupRuns = 0, MinLatencySamples = 1 };
        var plainCos = ModelComparer.Compare(model, plain.ToBytes(), test, eval).Outputs[0].MeanCosine;
        var rebuiltCos = ModelComparer.Compare(model, rebuilt.ToBytes(), test, eval).Outputs[0].MeanCosine;
        Assert.True(rebuiltCos > plainCos + 0.01, $"reconstructed cosine {rebuiltCos:0.0000} vs plain {plainCos:0.0000}");
        Assert.True(SubsetAccuracy(rebuilt.ToBytes()) > 0.8);
    }

    [Fact]
    public void ResNet18_ThirtyPercent_IsSmaller_LoadsAndRunsInOrt_AndReportsTheFeatureCosine()
    {
        var dir = RealModels.TempDir("structured-resnet18");
        var output = Path.Combine(dir, "pruned.onnx");
        using var runner = ModelRunner.Load(RealModels.ResNet18);
        var images = DataSpec.Parse($"images:{Path.Combine(RealModels.SamplesDir, "images")}?preset=resnet18-mlnet", runner.Inputs,
            new DataSpecOptions { ModelPath = RealModels.ResNet18 });
        // L1 alone keeps the test fast; reconstruction is checked on the CNN above and measured in the benchmarks.
        var options = new StructuredPruningOptions { Fraction = 0.3, RoundTo = 8 };
        var result = ModelCompressor.Compress(RealModels.ResNet18, [new StructuredPruningPass(options)],
            new CompressionOptions { OutputPath = output, Probes = images, Verification = new VerifyOptions { MinCosine = 0 } });

        var pass = result.Passes.Single();
        // Stages 1–3 are residual groups (stem/downsample Convs and the second Conv of each block, tied by the Adds);
        // the last stage's residual channels reach the graph output and stay; the first Conv of each of the 9 blocks is pruned alone.
        Assert.Contains(pass.Skipped, s => s.Contains("graph output"));
        Assert.Equal(9 + 3, pass.Changes.Count);
        Assert.Contains(pass.Changes, c => c.Contains("Convolution249") && c.Contains("64 -> 48"));
        Assert.True(Parameters(output) < 0.75 * Parameters(RealModels.ResNet18));
        Assert.InRange(result.Verification.MeanCosine, 0.1, 1.0);
        Assert.Equal(6, result.Verification.ProbeRows);
    }

    private static long Parameters(string path) =>
        ModelGraph.Load(path).Constants.Where(c => c.DataType == F).Sum(c => c.ElementCount);
}
