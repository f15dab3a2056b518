using Microsoft.ML;
using MLNetCompress.Data;
using MLNetCompress.ML.Distillation;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;

namespace MLNetCompress.ML.Tests.Distillation.SoftLabels;

public class SoftLabelGeneratorTests
{
    private static string Spec => $"fashion-mnist:{RealModels.FashionMnistSubset}:test";

    private static SoftLabelOptions Cnn(double t = 2.0) => new() { Teachers = [RealModels.CnnSample], Temperature = t, BatchSize = 50, MaxRows = 300 };

    // The teacher's logits straight from ONNX Runtime, one row at a time, and softmax(z / T) in double.
    private static List<double[]> Direct(string model, double t, int rows, out int[] labels)
    {
        using var runner = ModelRunner.Load(model);
        var feed = DataSpec.Parse(Spec, runner.Inputs);
        var result = new List<double[]>();
        var labelList = new List<int>();
        foreach (var batch in feed.Batches(1, rows))
        {
            var z = runner.Run(batch)["logits"].Data.ToArray();
            var m = z.Max();
            var e = z.Select(v => Math.Exp((v - m) / t)).ToArray();
            result.Add(e.Select(v => v / e.Sum()).ToArray());
            labelList.Add(batch.Labels![0]);
        }
        labels = labelList.ToArray();
        return result;
    }

    [Fact]
    public void CnnSoftLabelsMatchOnnxRuntimeDirectly()
    {
        var dir = RealModels.TempDir("softlabels-gen");
        var path = Path.Combine(dir, "cnn.parquet");
        var reports = new List<SoftLabelProgress>();
        var result = SoftLabelGenerator.Generate(Spec, path, Cnn(), new Progress(reports.Add));
        Assert.False(result.Skipped);
        Assert.Equal(300, result.Info.Rows);
        Assert.Equal(10, result.Info.Classes);
        Assert.Equal(784, result.Info.FeatureLength);
        Assert.Equal("logits", result.Info.OutputName);
        Assert.True(result.Info.HasLabels);
        Assert.Equal(300, reports[^1].RowsDone);
        Assert.All(reports, r => Assert.True(r.RowsPerSecond > 0));

        var expected = Direct(RealModels.CnnSample, 2.0, 300, out var labels);
        var rows = SoftLabelFileTests.ReadAll(SoftLabelFile.Load(new MLContext(1), path), features: true);
        Assert.Equal(300, rows.Count);
        for (var r = 0; r < rows.Count; r++)
        {
            Assert.Equal($"test#{r}", rows[r].Id);
            Assert.Equal(labels[r], rows[r].Label);
            for (var c = 0; c < 10; c++) Assert.True(Math.Abs(expected[r][c] - rows[r].SoftLabel[c]) < 2e-6, $"row {r} class {c}");
        }
        // The features are the pixels the teacher saw: p / 255.
        Assert.All(rows[0].Features!, v => Assert.InRange(v, 0f, 1f));
    }

    [Fact]
    public void ShardsMergedEqualAnUnshardedRunAndRerunsSkipFinishedShards()
    {
        var dir = RealModels.TempDir("softlabels-shards");
        var whole = Path.Combine(dir, "whole.parquet");
        SoftLabelGenerator.Generate(Spec, whole, Cnn() with { TopK = 3 });

        var output = Path.Combine(dir, "out.idv");
        var shardFiles = new List<string>();
        for (var i = 2; i >= 0; i--)
        {
            var r = SoftLabelGenerator.Generate(Spec, output, Cnn() with { TopK = 3, Shard = new SoftLabelShard(i, 3) });
            Assert.Equal(Path.Combine(dir, $"out.shard-{i}-of-3.idv"), r.Path);
            Assert.Equal(100, r.Info.Rows);
            Assert.Equal(i * 100, r.Info.Shard!.FirstRow);
            shardFiles.Add(r.Path);
        }

        // A rerun keeps a finished shard as it is; other settings make it again.
        var stamp = File.GetLastWriteTimeUtc(shardFiles[0]);
        var again = SoftLabelGenerator.Generate(Spec, output, Cnn() with { TopK = 3, Shard = new SoftLabelShard(2, 3) });
        Assert.True(again.Skipped);
        Assert.Contains(again.Notes, n => n.Contains("already complete"));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(shardFiles[0]));
        var changed = SoftLabelGenerator.Generate(Spec, output, Cnn(3.0) with { TopK = 3, Shard = new SoftLabelShard(2, 3) });
        Assert.False(changed.Skipped);
        var restored = SoftLabelGenerator.Generate(Spec, output, Cnn() with { TopK = 3, Shard = new SoftLabelShard(2, 3) });
        Assert.False(restored.Skipped);

        var merged = Path.Combine(dir, "merged.csv");
        var info = SoftLabelShards.Merge(shardFiles, merged);
        Assert.Equal(300, info.Rows);
        Assert.Null(info.Shard);
        var ml = new MLContext(1);
        var a = SoftLabelFileTests.ReadAll(SoftLabelFile.Load(ml, whole), features: true);
        var b = SoftLabelFileTests.ReadAll(SoftLabelFile.Load(ml, merged), features: true);
        Assert.Equal(a.Count, b.Count);
        for (var r = 0; r < a.Count; r++)
        {
            Assert.Equal(a[r].Id, b[r].Id);
            Assert.Equal(a[r].Label, b[r].Label);
            Assert.Equal(a[r].Features, b[r].Features);
            for (var c = 0; c < 10; c++) Assert.True(Math.Abs(a[r].SoftLabel[c] - b[r].SoftLabel[c]) < 1e-6, $"row {r} class {c}");
        }

        var missing = Assert.Throws<SoftLabelException>(() => SoftLabelShards.Merge(shardFiles.Take(2).ToList(), Path.Combine(dir, "m2.parquet")));
        Assert.Contains("0/3 missing", missing.Message);
        var twice = Assert.Throws<SoftLabelException>(() => SoftLabelShards.Merge([.. shardFiles, shardFiles[0]], Path.Combine(dir, "m3.parquet")));
        Assert.Contains("twice", twice.Message);
    }

    [Fact]
    public void ACancelledRunLeavesFinishedShardsAndNoPartialFile()
    {
        var dir = RealModels.TempDir("softlabels-cancel");
        var output = Path.Combine(dir, "out.parquet");
        var done = SoftLabelGenerator.Generate(Spec, output, Cnn() with { Shard = new SoftLabelShard(0, 2) });
        using var cts = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            SoftLabelGenerator.Generate(Spec, output, Cnn() with { Shard = new SoftLabelShard(1, 2), BatchSize = 10 }, new Progress(_ => cts.Cancel()), cancellationToken: cts.Token));
        Assert.False(File.Exists(new SoftLabelShard(1, 2).PathFor(output)));
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
        Assert.True(SoftLabelFile.IsComplete(done.Path, out var info));
        Assert.Equal(150, info!.Rows);
    }

    [Fact]
    public void AKilledRunKeepsItsFinishedPartsAndARerunLabelsOnlyTheRest()
    {
        var dir = RealModels.TempDir("softlabels-parts");
        var oneShot = Path.Combine(dir, "one.parquet");
        SoftLabelGenerator.Generate(Spec, oneShot, Cnn() with { CheckpointRows = null });

        var output = Path.Combine(dir, "parts.parquet");
        var options = Cnn() with { CheckpointRows = 70, BatchSize = 32 };
        using var cts = new CancellationTokenSource();
        // Stopped once 150 rows are labelled: parts 0 and 1 (rows 0..139) are on disk by then.
        Assert.ThrowsAny<OperationCanceledException>(() => SoftLabelGenerator.Generate(Spec, output, options,
            new Progress(p => { if (p.RowsDone >= 150) cts.Cancel(); }), cancellationToken: cts.Token));
        Assert.False(File.Exists(output));
        var kept = Directory.GetFiles(output + ".parts", "*.parquet");
        Assert.True(kept.Length >= 2, $"{kept.Length} parts kept");
        Assert.All(kept, f => Assert.True(SoftLabelFile.IsComplete(f, out _)));
        Assert.Empty(Directory.GetFiles(output + ".parts", "*.tmp"));

        var reports = new List<SoftLabelProgress>();
        var notes = new List<string>();
        var result = SoftLabelGenerator.Generate(Spec, output, options, new Progress(reports.Add), notes.Add);
        Assert.Contains(notes, n => n.Contains("already complete"));
        Assert.True(reports[^1].RowsDone <= 300 - 70 * kept.Length, $"labelled {reports[^1].RowsDone} rows again");
        Assert.False(Directory.Exists(output + ".parts"));
        Assert.Equal(300, result.Info.Rows);
        var a = SoftLabelFileTests.ReadAll(SoftLabelFile.Load(new MLContext(1), oneShot), features: true);
        var b = SoftLabelFileTests.ReadAll(SoftLabelFile.Load(new MLContext(1), output), features: true);
        Assert.Equal(a.Select(r => r.Id), b.Select(r => r.Id));
        for (var r = 0; r < a.Count; r++)
        {
            Assert.Equal(a[r].Features, b[r].Features);
            for (var c = 0; c < 10; c++) Assert.True(Math.Abs(a[r].SoftLabel[c] - b[r].SoftLabel[c]) < 1e-6, $"row {r} class {c}");
        }
    }

    [Fact]
    public void GeometricEnsembleOfTwoTeachersMatchesHandComputation()
    {
        var dir = RealModels.TempDir("softlabels-ensemble");
        var path = Path.Combine(dir, "ens.csv");
        var options = Cnn(1.5) with { Teachers = [RealModels.CnnSample, RealModels.MlpSample], Combine = SoftLabelCombine.Geometric, MaxRows = 40, IncludeFeatures = false };
        var result = SoftLabelGenerator.Generate(Spec, path, options);
        Assert.Null(result.Info.FeatureLength);
        Assert.Equal(["fashion_mnist_cnn.onnx", "fashion_mnist_mlp.onnx"], result.Info.Teachers);
        var cnn = Direct(RealModels.CnnSample, 1.5, 40, out _);
        var mlp = Direct(RealModels.MlpSample, 1.5, 40, out _);
        var rows = SoftLabelFileTests.ReadAll(SoftLabelFile.Load(new MLContext(1), path), features: false);
        for (var r = 0; r < 40; r++)
        {
            var g = Enumerable.Range(0, 10).Select(c => Math.Sqrt(cnn[r][c] * mlp[r][c])).ToArray();
            for (var c = 0; c < 10; c++) Assert.True(Math.Abs(g[c] / g.Sum() - rows[r].SoftLabel[c]) < 2e-6, $"row {r} class {c}");
        }
    }

    [Fact]
    public void CudaAskedForOnACpuBuildFallsBackWithANote()
    {
        var dir = RealModels.TempDir("softlabels-gpu");
        var options = Cnn() with { MaxRows = 20, Runtime = RuntimeOptions.Default with { GpuDeviceId = 0 } };
        var notes = new List<string>();
        var result = SoftLabelGenerator.Generate(Spec, Path.Combine(dir, "gpu.idv"), options, log: notes.Add);
        if (result.OnGpu) return; // a CUDA build on a machine with a GPU: nothing to fall back from
        Assert.Contains(notes, n => n.Contains("CUDA") && n.Contains("CPU"));
        Assert.Equal(20, result.Info.Rows);
    }

    [Fact]
    public void BadTeachersAndOptionsAreNamed()
    {
        var dir = RealModels.TempDir("softlabels-bad");
        var output = Path.Combine(dir, "x.parquet");
        Assert.Contains("no output 'probs'", Assert.Throws<SoftLabelException>(() => SoftLabelGenerator.Generate(Spec, output, Cnn() with { OutputName = "probs" })).Message);
        Assert.Contains("more than the 10 classes", Assert.Throws<SoftLabelException>(() => SoftLabelGenerator.Generate(Spec, output, Cnn() with { TopK = 11 })).Message);
        Assert.Throws<FileNotFoundException>(() => SoftLabelGenerator.Generate(Spec, output, Cnn() with { Teachers = [Path.Combine(dir, "none.onnx")] }));
        Assert.Throws<SoftLabelException>(() => SoftLabelGenerator.Generate(Spec, Path.Combine(dir, "x.txt"), Cnn()));
        Assert.Throws<DataSpecException>(() => SoftLabelGenerator.Generate("nosuch:thing", output, Cnn()));
    }

    // Reports on the calling thread, in order (System.Progress would post to the thread pool).
    private sealed class Progress(Action<SoftLabelProgress> report) : IProgress<SoftLabelProgress>
    {
        public void Report(SoftLabelProgress value) => report(value);
    }
}
