using System.Security.Cryptography;
using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Quantization;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Xunit.Abstractions;

namespace MLNetCompress.Tests.Compression;

public class ModelCompressorTests(ITestOutputHelper output)
{
    private static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>A copy of a model in a fresh folder, so a test can watch exactly what appears beside it.</summary>
    private static string CopyToTemp(string model, string name)
    {
        var path = Path.Combine(RealModels.TempDir(name), Path.GetFileName(model));
        File.Copy(model, path);
        return path;
    }

    [Theory]
    [InlineData("mlp")]
    [InlineData("cnn")]
    public void Samples_AreCompressedVerifiedAndWritten_InputUntouched(string sample)
    {
        var input = CopyToTemp(sample == "mlp" ? RealModels.MlpSample : RealModels.CnnSample, "compress-" + sample);
        string hash = Hash(input);
        var outputPath = Path.Combine(Path.GetDirectoryName(input)!, "out", sample + ".int8.onnx");
        var progress = new List<CompressionProgress>();
        IDataFeed probes;
        using (var session = ModelRunner.Load(input))
            probes = new FashionMnistFeed(RealModels.FashionMnistSubset, session.Inputs);

        var result = ModelCompressor.Compress(input, ModelCompressor.DemoPasses(),
            new CompressionOptions { OutputPath = outputPath, Probes = probes, Verification = new VerifyOptions { ProbeRows = 64, BatchSize = 32, MinTop1Agreement = 0.98 } },
            new SyncProgress<CompressionProgress>(progress.Add));

        Assert.Equal(hash, Hash(input));
        Assert.True(File.Exists(outputPath));
        Assert.Equal(Path.GetFullPath(outputPath), result.OutputPath);
        Assert.Equal(new FileInfo(input).Length, result.BytesBefore);
        Assert.Equal(new FileInfo(outputPath).Length, result.BytesAfter);
        Assert.True(result.CompressionRatio >= 3.5, $"ratio {result.CompressionRatio}");
        Assert.True(result.Modified);
        Assert.Equal("int8-weight-storage", Assert.Single(result.Passes).PassName);
        Assert.Equal(3, result.Layers.Count);
        Assert.All(result.Layers, l => Assert.Equal("float", l.StorageBefore));
        Assert.All(result.Layers, l => Assert.True(l.BytesAfter * 3.5 < l.BytesBefore && l.MaxAbsError > 0));
        Assert.Equal(64, result.Verification.ProbeRows);
        Assert.True(result.Verification.MinCosine > 0.999, result.Verification.Summary);
        Assert.True(result.Verification.MeanCosine >= result.Verification.MinCosine);
        Assert.True(result.Verification.MaxAbsDiff > 0);
        Assert.True(result.Elapsed > TimeSpan.Zero);
        // Stages in order, ending with the write.
        var stages = progress.Select(p => p.Stage).Distinct().ToList();
        Assert.Equal([CompressionStage.Load, CompressionStage.Passes, CompressionStage.Verify, CompressionStage.Write], stages);
        Assert.Contains(progress, p => p.Step == "int8-weight-storage: quantize");

        // The written model runs in ONNX Runtime on real images.
        using var runner = ModelRunner.Load(outputPath);
        var batch = new FashionMnistFeed(RealModels.FashionMnistSubset, runner.Inputs).Batches(16).First();
        Assert.Equal([16L, 10], runner.Run(batch).Outputs[0].Shape);
        // Only the output was written beside the input: no temp or staging files left.
        Assert.Equal([outputPath], Directory.GetFiles(Path.GetDirectoryName(outputPath)!));

        output.WriteLine($"{sample}: {result.BytesBefore} -> {result.BytesAfter} bytes ({result.CompressionRatio:F2}x), {result.Verification.Summary}, {result.Elapsed.TotalMilliseconds:F0} ms");
        foreach (var l in result.Layers)
            output.WriteLine($"  {l.Weight} {l.OpType} [{string.Join(",", l.Shape)}] {l.StorageBefore} -> {l.StorageAfter}: {l.BytesBefore} -> {l.BytesAfter} B, max abs error {l.MaxAbsError:G3}");
    }

    [Fact]
    public void ResNet18_DemoDefaults_WithRandomProbes()
    {
        var input = RealModels.ResNet18;
        string hash = Hash(input);
        var outputPath = Path.Combine(RealModels.TempDir("compress-resnet"), "resnet18.int8.onnx");

        var result = ModelCompressor.Compress(input, ModelCompressor.DemoPasses(), new CompressionOptions { OutputPath = outputPath });

        Assert.Equal(hash, Hash(input));
        Assert.True(result.CompressionRatio >= 3.5, $"ratio {result.CompressionRatio}");
        Assert.Equal(22, result.Layers.Count);
        Assert.True(result.Verification.MinCosine >= 0.99);
        output.WriteLine($"ResNet18: {result.BytesBefore} -> {result.BytesAfter} bytes ({result.CompressionRatio:F2}x), {result.Verification.Summary}, {result.Elapsed.TotalSeconds:F1} s");
    }

    [Fact]
    public void APassThatBreaksTheOutputs_IsRefusedByVerification_AndNothingIsWritten()
    {
        var input = CopyToTemp(RealModels.MlpSample, "compress-broken");
        string hash = Hash(input);
        var outputPath = Path.Combine(Path.GetDirectoryName(input)!, "broken.onnx");

        var e = Assert.Throws<CompressionException>(() => ModelCompressor.Compress(input,
            [.. ModelCompressor.DemoPasses(), new ZeroFirstWeightPass()], new CompressionOptions { OutputPath = outputPath }));

        Assert.Equal(CompressionStage.Verify, e.Stage);
        Assert.NotNull(e.Verification);
        Assert.False(e.Verification.Passed);
        Assert.StartsWith("verification failed, nothing was written: output 'logits': min cosine", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.False(File.Exists(outputPath));
        Assert.Equal([input], Directory.GetFiles(Path.GetDirectoryName(input)!));
        Assert.Equal(hash, Hash(input));
        output.WriteLine(e.Message);
    }

    [Fact]
    public void AFailedRun_LeavesAnExistingOutputAsItWas()
    {
        var input = CopyToTemp(RealModels.MlpSample, "compress-keep");
        var outputPath = Path.Combine(Path.GetDirectoryName(input)!, "existing.onnx");
        File.WriteAllText(outputPath, "previous result");

        Assert.Throws<CompressionException>(() => ModelCompressor.Compress(input, [new ZeroFirstWeightPass()], new CompressionOptions { OutputPath = outputPath }));
        Assert.Equal("previous result", File.ReadAllText(outputPath));
    }

    [Fact]
    public void APassThatBreaksTheGraph_IsNamed_AndNothingIsWritten()
    {
        var input = CopyToTemp(RealModels.MlpSample, "compress-invalid");
        var outputPath = Path.Combine(Path.GetDirectoryName(input)!, "invalid.onnx");

        var e = Assert.Throws<CompressionException>(() => ModelCompressor.Compress(input, [new DropFirstNodePass()], new CompressionOptions { OutputPath = outputPath }));

        Assert.Equal(CompressionStage.Passes, e.Stage);
        Assert.IsType<PassFailedException>(e.InnerException);
        Assert.Contains("pass 'drop-first-node'", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(outputPath));
    }

    [Fact]
    public void TheInputIsNeverTheOutput()
    {
        var input = CopyToTemp(RealModels.MlpSample, "compress-same");
        string hash = Hash(input);
        string dir = Path.GetDirectoryName(input)!;

        var same = Assert.Throws<CompressionException>(() => ModelCompressor.Compress(input, ModelCompressor.DemoPasses(),
            new CompressionOptions { OutputPath = Path.Combine(dir, ".", Path.GetFileName(input)) }));
        Assert.Contains("is the input model itself", same.Message, StringComparison.Ordinal);
        Assert.Equal(CompressionStage.Load, same.Stage);

        // Through a symbolic link: writing to the link's target would replace the input.
        var link = Path.Combine(dir, "link.onnx");
        File.CreateSymbolicLink(link, input);
        Assert.Throws<CompressionException>(() => ModelCompressor.Compress(link, ModelCompressor.DemoPasses(), new CompressionOptions { OutputPath = input }));
        Assert.Equal(hash, Hash(input));
    }

    [Fact]
    public void BadOutputsAndInputs_AreRefusedWithOneLine()
    {
        var input = CopyToTemp(RealModels.MlpSample, "compress-bad");
        string dir = Path.GetDirectoryName(input)!;
        var existing = Path.Combine(dir, "existing.onnx");
        File.WriteAllText(existing, "keep me");
        var notAModel = Path.Combine(dir, "notes.onnx");
        File.WriteAllText(notAModel, "not a model");

        var folder = Assert.Throws<CompressionException>(() => ModelCompressor.Compress(input, ModelCompressor.DemoPasses(), new CompressionOptions { OutputPath = dir }));
        Assert.Contains("is a folder", folder.Message, StringComparison.Ordinal);
        var exists = Assert.Throws<CompressionException>(() => ModelCompressor.Compress(input, ModelCompressor.DemoPasses(), new CompressionOptions { OutputPath = existing, Overwrite = false }));
        Assert.Contains("exists", exists.Message, StringComparison.Ordinal);
        Assert.Equal("keep me", File.ReadAllText(existing));
        var missing = Assert.Throws<CompressionException>(() => ModelCompressor.Compress(Path.Combine(dir, "missing.onnx"), ModelCompressor.DemoPasses(), new CompressionOptions { OutputPath = Path.Combine(dir, "o.onnx") }));
        Assert.Contains("does not exist", missing.Message, StringComparison.Ordinal);
        var unreadable = Assert.Throws<CompressionException>(() => ModelCompressor.Compress(notAModel, ModelCompressor.DemoPasses(), new CompressionOptions { OutputPath = Path.Combine(dir, "o.onnx") }));
        Assert.Equal(CompressionStage.Load, unreadable.Stage);
        foreach (var e in new[] { folder, exists, missing, unreadable }) Assert.DoesNotContain('\n', e.Message);
        Assert.False(File.Exists(Path.Combine(dir, "o.onnx")));
    }

    [Fact]
    public void ModelBytes_AreCompressedToo()
    {
        var bytes = File.ReadAllBytes(RealModels.MlpSample);
        var outputPath = Path.Combine(RealModels.TempDir("compress-bytes"), "mlp.int8.onnx");

        var result = ModelCompressor.Compress(bytes, ModelCompressor.DemoPasses(), new CompressionOptions { OutputPath = outputPath });

        Assert.Null(result.InputPath);
        Assert.Equal(bytes.LongLength, result.BytesBefore);
        Assert.True(result.CompressionRatio >= 3.5);
        Assert.Equal(3, ModelGraph.Load(outputPath).Main.Initializers.Count(t => t.DataType == (int)OnnxDataType.Int8));
    }

    [Fact]
    public void ExternalDataOutput_IsVerifiedFromAStagedCopy_AndWrittenWithItsDataFile()
    {
        var dir = RealModels.TempDir("compress-external");
        var outputPath = Path.Combine(dir, "mlp.int8.onnx");
        var write = new ModelWriteOptions { ExternalData = ExternalDataMode.Always, ExternalThresholdBytes = 1024 };

        var result = ModelCompressor.Compress(RealModels.MlpSample, ModelCompressor.DemoPasses(), new CompressionOptions { OutputPath = outputPath, Write = write });

        Assert.Equal([outputPath, outputPath + ".data"], Directory.GetFiles(dir).Order(StringComparer.Ordinal));
        Assert.Empty(Directory.GetDirectories(dir)); // the staging folder is gone
        Assert.Equal(new FileInfo(outputPath).Length + new FileInfo(outputPath + ".data").Length, result.BytesAfter);
        Assert.True(result.CompressionRatio >= 3.5, $"ratio {result.CompressionRatio}");
        Assert.True(result.Verification.MinCosine > 0.999);
        using var runner = ModelRunner.Load(outputPath);

        // Compressing that model again must not write over its own data file.
        var e = Assert.Throws<CompressionException>(() => ModelCompressor.Compress(outputPath, ModelCompressor.DemoPasses(),
            new CompressionOptions { OutputPath = outputPath + ".data" }));
        Assert.Contains("external data of the input", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NoPasses_WritesTheVerifiedModelUnchanged()
    {
        var outputPath = Path.Combine(RealModels.TempDir("compress-none"), "same.onnx");
        var result = ModelCompressor.Compress(RealModels.MlpSample, [], new CompressionOptions { OutputPath = outputPath });
        Assert.False(result.Modified);
        Assert.Empty(result.Layers);
        Assert.Equal(1.0, result.Verification.MinCosine);
    }

    [Fact]
    public void Cancellation_StopsBeforeAnythingIsWritten()
    {
        var outputPath = Path.Combine(RealModels.TempDir("compress-cancel"), "cancelled.onnx");
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            ModelCompressor.Compress(RealModels.MlpSample, ModelCompressor.DemoPasses(), new CompressionOptions { OutputPath = outputPath }, null, cts.Token));
        Assert.False(File.Exists(outputPath));
    }

    /// <summary>A faulty pass: zeros the first float weight of a Gemm/Conv/MatMul, as a broken compression would.</summary>
    private sealed class ZeroFirstWeightPass : IGraphPass
    {
        public string Name => "zero-first-weight";

        public PassResult Run(ModelGraph graph, PassContext context)
        {
            var node = graph.Main.Nodes.First(n => n.OpType is "Gemm" or "Conv" or "MatMul");
            string name = node.Input[1];
            var weight = graph.Main.ConstantValue(name);
            if (weight is null)
            {
                // After the int8 pass the weight is Mul(Cast(q), scale): zero the int8 values.
                var q = graph.Main.Producer(graph.Main.Producer(name)!.Input[0])!.Input[0];
                var t = graph.Main.Initializer(q)!;
                graph.Main.ReplaceConstant(q, TensorData.FromInt8(q, t.Dims.ToArray(), new sbyte[TensorData.ElementCount(t.Dims.ToArray())]));
            }
            else
            {
                var dims = weight.Dims.ToArray();
                graph.Main.ReplaceConstant(name, TensorData.FromFloats(name, dims, new float[TensorData.ElementCount(dims)]));
            }
            return new PassResult(Name, true, [$"zeroed {name}"], []);
        }
    }

    /// <summary>A faulty pass: removes the first node, leaving its readers with nothing to read.</summary>
    private sealed class DropFirstNodePass : IGraphPass
    {
        public string Name => "drop-first-node";

        public PassResult Run(ModelGraph graph, PassContext context)
        {
            graph.Main.RemoveNode(graph.Main.Nodes[0]);
            return new PassResult(Name, true, ["dropped a node"], []);
        }
    }

    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
