using System.Diagnostics;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Runtime;

namespace MLNetCompress.Compression;

/// <summary>
/// The engine under every front end: reads a model, runs the passes (the graph's invariants are checked
/// after each), loads the result in ONNX Runtime and compares it with the original on probe rows, and
/// only then writes it, atomically. The input is never written to; a model that fails any step is never
/// written, and the failure is a <see cref="CompressionException"/> with a one-line message.
/// </summary>
public static class ModelCompressor
{
    /// <summary>The passes <c>mlnet-compress demo</c> runs: float weights stored as int8, folded back at load (about 4x smaller, same speed).</summary>
    public static IReadOnlyList<IGraphPass> DemoPasses() => [new Int8WeightStoragePass()];

    /// <summary>Compresses a model file into <see cref="CompressionOptions.OutputPath"/>.</summary>
    /// <param name="inputPath">The model to compress; it is only read.</param>
    /// <param name="passes">The passes, run in order.</param>
    /// <param name="options">Output path, verification thresholds and probes.</param>
    /// <param name="progress">Receives progress; may be null.</param>
    /// <param name="cancellationToken">Stops the run between steps (nothing is written).</param>
    /// <exception cref="CompressionException">A step failed; nothing was written.</exception>
    public static CompressionResult Compress(string inputPath, IEnumerable<IGraphPass> passes, CompressionOptions options,
        IProgress<CompressionProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputPath);
        ArgumentNullException.ThrowIfNull(passes);
        ArgumentNullException.ThrowIfNull(options);
        var clock = Stopwatch.StartNew();
        string input = Path.GetFullPath(inputPath);
        string output = CheckOutput(options);
        if (!File.Exists(input))
            throw new CompressionException(CompressionStage.Load, $"input model '{inputPath}' does not exist.");
        if (SameFile(input, output))
            throw new CompressionException(CompressionStage.Load,
                $"the output path '{options.OutputPath}' is the input model itself; choose another output so the input stays untouched.");
        string? clash = InputDataFileAt(input, output);
        if (clash is not null)
            throw new CompressionException(CompressionStage.Load,
                $"writing '{options.OutputPath}' could replace '{clash}', external data of the input; choose another output name.");

        progress?.Report(new CompressionProgress(CompressionStage.Load, "read " + Path.GetFileName(input), 0, 1));
        var graph = LoadGraph(() => ModelGraph.Load(input, options.Read), inputPath);
        return Run(graph, ModelSource.FromFile(input), input, OnnxModelIO.SizeOnDisk(input), output,
            passes, options, progress, cancellationToken, clock);
    }

    /// <summary>Compresses a serialized model into <see cref="CompressionOptions.OutputPath"/>.</summary>
    /// <param name="model">The serialized model; external data is looked up in <see cref="ModelReadOptions.BaseDirectory"/> of <see cref="CompressionOptions.Read"/>.</param>
    /// <param name="passes">The passes, run in order.</param>
    /// <param name="options">Output path, verification thresholds and probes.</param>
    /// <param name="progress">Receives progress; may be null.</param>
    /// <param name="cancellationToken">Stops the run between steps (nothing is written).</param>
    /// <exception cref="CompressionException">A step failed; nothing was written.</exception>
    public static CompressionResult Compress(byte[] model, IEnumerable<IGraphPass> passes, CompressionOptions options,
        IProgress<CompressionProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(passes);
        ArgumentNullException.ThrowIfNull(options);
        var clock = Stopwatch.StartNew();
        string output = CheckOutput(options);
        progress?.Report(new CompressionProgress(CompressionStage.Load, "read model bytes", 0, 1));
        var graph = LoadGraph(() => ModelGraph.FromBytes(model, options.Read), "the model bytes");
        var original = ModelSource.FromBytes(model, "original", options.Read?.BaseDirectory);
        return Run(graph, original, null, model.LongLength, output, passes, options, progress, cancellationToken, clock);
    }

    private static CompressionResult Run(ModelGraph graph, ModelSource original, string? inputPath, long bytesBefore, string output,
        IEnumerable<IGraphPass> passes, CompressionOptions options, IProgress<CompressionProgress>? progress,
        CancellationToken cancellationToken, Stopwatch clock)
    {
        // Passes that report per-weight rows are wrapped so PassManager still runs them and checks the graph after each.
        var layers = new List<LayerChange>();
        var passList = passes.ToList();
        var context = new PassContext
        {
            Progress = progress is null ? null : new PassProgressForwarder(progress),
            Log = options.Log,
            Cancellation = cancellationToken,
        };
        // A static int8 pass can be re-run with remedies if the gate refuses its model: keep the graph it starts from.
        int qdqAt = options.RecoverFailedQuantization ? passList.FindIndex(p => Unwrap(p) is QdqQuantizationPass) : -1;
        var results = new List<PassResult>();
        ModelGraph? beforeQdq = null;
        int rowsBeforeQdq = 0;
        if (qdqAt < 0) results.AddRange(RunPasses(graph, passList, layers, context));
        else
        {
            results.AddRange(RunPasses(graph, passList.Take(qdqAt), layers, context));
            beforeQdq = graph.Clone();
            rowsBeforeQdq = layers.Count;
            results.AddRange(RunPasses(graph, passList.Skip(qdqAt), layers, context));
        }

        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report(new CompressionProgress(CompressionStage.Verify, "load the result in ONNX Runtime and compare", 0, 1));
        var notes = new List<string>();
        VerifyResult verification;
        try
        {
            verification = VerifyThenWrite(graph, original, output, options, progress, cancellationToken);
        }
        catch (CompressionException e) when (beforeQdq is not null && e.Verification is { } refused && FailedOnCosine(refused, options.Verification))
        {
            // The gate refused the int8 model: find the layers responsible, remedy them, and run the rest again.
            var qdq = (QdqQuantizationPass)Unwrap(passList[qdqAt]);
            progress?.Report(new CompressionProgress(CompressionStage.Passes, "gate refused the int8 model: searching for the layers responsible", 0, 1));
            QdqRecovery recovery;
            try
            {
                recovery = QdqGateRecovery.Recover(beforeQdq, qdq.Options, options.Probes, options.Verification, refused.Reason, cancellationToken);
            }
            catch (Exception r) when (r is InvalidOperationException or ArgumentException or OrtRuntimeException or OnnxFormatException)
            {
                throw new CompressionException($"{e.Message.TrimEnd('.')}; the search for the layers responsible could not run ({OneLine(r)}).", refused);
            }
            notes.AddRange(recovery.Notes);
            foreach (var n in recovery.Notes) options.Log?.Invoke(n);
            graph = beforeQdq;
            results.RemoveRange(qdqAt, results.Count - qdqAt);
            layers.RemoveRange(rowsBeforeQdq, layers.Count - rowsBeforeQdq);
            var rerun = qdq.RerunWith(recovery.Options);
            var again = new List<IGraphPass> { passList[qdqAt] is IPassWrapper wrapper ? wrapper.Wrap(rerun) : rerun };
            again.AddRange(passList.Skip(qdqAt + 1));
            results.AddRange(RunPasses(graph, again, layers, context));
            try
            {
                verification = VerifyThenWrite(graph, original, output, options, progress, cancellationToken);
            }
            catch (CompressionException second) when (second.Verification is not null)
            {
                throw new CompressionException($"{second.Message.TrimEnd('.')}, also after the gate's recovery ({recovery.Notes[^1].TrimEnd('.')}); " +
                    "nothing was written. Exclude layers (--exclude) or lower --min-cosine if the drop is acceptable.", second.Verification);
            }
        }
        progress?.Report(new CompressionProgress(CompressionStage.Write, "wrote " + Path.GetFileName(output), 1, 1));

        return new CompressionResult(inputPath, output, bytesBefore, OnnxModelIO.SizeOnDisk(output), results, layers,
            VerificationSummary.From(verification), clock.Elapsed) { Notes = notes };
    }

    /// <summary>The pass inside any wrappers (a recipe's size probe).</summary>
    private static IGraphPass Unwrap(IGraphPass pass)
    {
        while (pass is IPassWrapper w) pass = w.Inner;
        return pass;
    }

    /// <summary>Runs passes under <see cref="PassManager"/>, layer rows collected; one-line errors.</summary>
    private static IReadOnlyList<PassResult> RunPasses(ModelGraph graph, IEnumerable<IGraphPass> passes, List<LayerChange> layers, PassContext context)
    {
        var toRun = passes.Select(p => p is ILayerReportingPass lp ? new LayerCollector(lp, layers) : p).ToList();
        IReadOnlyList<PassResult> results;
        try
        {
            results = PassManager.Run(graph, toRun, context);
        }
        catch (PassFailedException e)
        {
            throw new CompressionException(CompressionStage.Passes, $"{e.Message.TrimEnd('.')}; nothing was written.", e);
        }
        catch (Exception e) when (e is OnnxFormatException or ArgumentException or InvalidOperationException)
        {
            throw new CompressionException(CompressionStage.Passes, $"a pass failed: {OneLine(e)}; nothing was written.", e);
        }
        return results;
    }

    /// <summary>True when the gate refused a model that loads and runs, for its cosine (what a remedy can fix).</summary>
    private static bool FailedOnCosine(VerifyResult verdict, VerifyOptions thresholds) =>
        verdict.Outputs.Count > 0 && verdict.Outputs.Any(o => !(o.MinCosine >= thresholds.MinCosine));

    /// <summary>Verifies the exact model that will be written, then writes it; throws when it fails.</summary>
    private static VerifyResult VerifyThenWrite(ModelGraph graph, ModelSource original, string output, CompressionOptions options,
        IProgress<CompressionProgress>? progress, CancellationToken cancellationToken)
    {
        void Writing() => progress?.Report(new CompressionProgress(CompressionStage.Write, "write " + Path.GetFileName(output), 0, 1));
        var write = options.Write ?? new ModelWriteOptions();
        bool fitsInMemory = write.ExternalData != ExternalDataMode.Always
            && ExternalData.InlineSize(graph.Model) <= write.InlineLimitBytes;
        if (fitsInMemory)
        {
            var verdict = Verify(original, ModelSource.FromBytes(graph.ToBytes(), "candidate"), options);
            cancellationToken.ThrowIfCancellationRequested();
            Writing();
            Save(graph, output, write);
            return verdict;
        }

        // Too big for one protobuf: write it with its external data into a hidden folder beside the output,
        // verify that, then write the real output. The staging folder goes away either way.
        string stage = Path.Combine(Path.GetDirectoryName(output)!, $".mlnet-compress-{Guid.NewGuid():N}");
        try
        {
            string staged = Path.Combine(stage, Path.GetFileName(output));
            Save(graph, staged, write);
            var verdict = Verify(original, ModelSource.FromFile(staged), options);
            cancellationToken.ThrowIfCancellationRequested();
            Writing();
            Save(graph, output, write);
            return verdict;
        }
        finally
        {
            if (Directory.Exists(stage)) Directory.Delete(stage, recursive: true);
        }
    }

    private static VerifyResult Verify(ModelSource original, ModelSource candidate, CompressionOptions options)
    {
        var verdict = Verifier.Verify(original, candidate, options.Probes, options.Verification);
        if (!verdict.Passed)
            throw new CompressionException($"verification failed, nothing was written: {verdict.Reason}.", verdict);
        return verdict;
    }

    private static void Save(ModelGraph graph, string path, ModelWriteOptions write)
    {
        try
        {
            graph.Save(path, write);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or OnnxFormatException)
        {
            throw new CompressionException(CompressionStage.Write, $"could not write '{path}': {OneLine(e)}", e);
        }
    }

    private static ModelGraph LoadGraph(Func<ModelGraph> load, string what)
    {
        try
        {
            return load();
        }
        catch (Exception e) when (e is OnnxFormatException or IOException or UnauthorizedAccessException)
        {
            throw new CompressionException(CompressionStage.Load, $"cannot read {what}: {OneLine(e)}", e);
        }
    }

    private static string CheckOutput(CompressionOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.OutputPath))
            throw new CompressionException(CompressionStage.Load, "no output path was given.");
        string output = Path.GetFullPath(options.OutputPath);
        if (Directory.Exists(output))
            throw new CompressionException(CompressionStage.Load, $"the output path '{options.OutputPath}' is a folder; give a file name such as model.int8.onnx.");
        if (!options.Overwrite && File.Exists(output))
            throw new CompressionException(CompressionStage.Load, $"the output '{options.OutputPath}' exists; allow overwriting or choose another name.");
        return output;
    }

    /// <summary>True when two paths name the same file, following symbolic links (writing through one would replace the other).</summary>
    private static bool SameFile(string a, string b) =>
        string.Equals(RealPath(a), RealPath(b), OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase);

    private static string RealPath(string path)
    {
        try
        {
            return File.Exists(path) && File.ResolveLinkTarget(path, returnFinalTarget: true) is { } target
                ? Path.GetFullPath(target.FullName)
                : path;
        }
        catch (IOException)
        {
            return path;
        }
    }

    /// <summary>The input's external data file that writing <paramref name="output"/> (or its <c>.data</c> file) would replace, if any.</summary>
    private static string? InputDataFileAt(string input, string output)
    {
        // Only an existing file can be the input's data; this also spares parsing the input twice.
        if (!File.Exists(output) && !File.Exists(output + ".data")) return null;
        IEnumerable<string> locations;
        try
        {
            locations = ExternalData.Locations(input);
        }
        catch (OnnxFormatException)
        {
            return null; // an unreadable input is reported when it is loaded
        }
        string dir = Path.GetDirectoryName(input)!;
        foreach (var location in locations)
        {
            string data = Path.GetFullPath(Path.Combine(dir, location));
            if (SameFile(data, output) || SameFile(data, output + ".data")) return data;
        }
        return null;
    }

    private static string OneLine(Exception e)
    {
        var text = e.Message.Trim();
        int end = text.IndexOfAny(['\r', '\n']);
        return (end < 0 ? text : text[..end]).TrimEnd('.');
    }

    /// <summary>Runs a layer-reporting pass under <see cref="PassManager"/>, collecting its rows.</summary>
    private sealed class LayerCollector(ILayerReportingPass pass, List<LayerChange> layers) : IGraphPass
    {
        public string Name => pass.Name;

        public PassResult Run(ModelGraph graph, PassContext context) => pass.Run(graph, context, layers);
    }

    /// <summary>Forwards pass progress synchronously (<see cref="Progress{T}"/> would post it to a synchronization context).</summary>
    private sealed class PassProgressForwarder(IProgress<CompressionProgress> target) : IProgress<PassProgress>
    {
        public void Report(PassProgress value) =>
            target.Report(new CompressionProgress(CompressionStage.Passes, $"{value.PassName}: {value.Step}", value.Done, value.Total));
    }
}
