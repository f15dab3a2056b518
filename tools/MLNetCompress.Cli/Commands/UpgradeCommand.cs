using System.CommandLine;
using System.Globalization;
using MLNetCompress.Compression;
using MLNetCompress.Evaluation;
using MLNetCompress.Preparation;

namespace MLNetCompress.Cli.Commands;

/// <summary>
/// <c>upgrade MODEL --opset N -o OUT [--min-cosine C]</c>: raises the model's ai.onnx opset, rewriting the nodes whose
/// meaning changed on the way, verifies the result against the original in ONNX Runtime and writes it.
/// </summary>
internal static class UpgradeCommand
{
    public static Command Create(Func<ParseResult, CliContext> context)
    {
        var model = new Argument<string>("MODEL") { Description = "The .onnx model to upgrade (only read)." };
        var output = new Option<string>("--output", "-o") { Description = "The upgraded model to write.", Required = true, HelpName = "OUT" };
        var opset = new Option<long>("--opset")
        {
            Description = $"The ai.onnx opset to upgrade to ({OpsetUpgradeOptions.MinTargetOpset} to {OpsetChangelog.MaxOpset}; " +
                          "QDQ needs 10, per-channel 13, int4 21).",
            Required = true,
            HelpName = "N",
        };
        opset.Validators.Add(r =>
        {
            long v = r.GetValueOrDefault<long>();
            if (v < OpsetUpgradeOptions.MinTargetOpset || v > OpsetChangelog.MaxOpset)
                r.AddError($"--opset {v} is out of range; choose {OpsetUpgradeOptions.MinTargetOpset} to {OpsetChangelog.MaxOpset}");
        });
        var minCosine = CommonOptions.MinCosine("random probes", 0.9999);
        var command = new Command("upgrade",
            "Raise a model's ai.onnx opset (and IR version), rewriting the nodes whose meaning changed between versions " +
            "(Softmax axis, attributes that became inputs, Upsample -> Resize, ...); refuse, naming the op, where a change " +
            "cannot be rewritten. The result is verified against the original in ONNX Runtime before it is written.")
        {
            model, output, opset, minCosine,
        };
        command.SetAction(async (ParseResult r, CancellationToken ct) =>
            await RunAsync(context(r), r.GetValue(model)!, r.GetValue(output)!, r.GetValue(opset), r.GetValue(minCosine), ct).ConfigureAwait(false));
        return command;
    }

    private static async Task<int> RunAsync(CliContext ctx, string model, string output, long opset, double minCosine, CancellationToken ct)
    {
        ModelFiles.Require(model, "MODEL");
        CommonOptions.CheckMinCosine(minCosine);
        var options = new CompressionOptions
        {
            OutputPath = output,
            Verification = new VerifyOptions { MinCosine = minCosine },
        };
        var result = await ProgressBar.RunAsync(ctx, "upgrading", bar =>
        {
            var progress = bar.Reporter<CompressionProgress>((b, p) =>
                b.Update($"{p.Stage.ToString().ToLowerInvariant()}: {p.Step}", p.Done, p.Total > 0 ? p.Total : null));
            return ModelCompressor.Compress(model, [new OpsetUpgradePass(opset)], options, progress, ct);
        }, ct).ConfigureAwait(false);
        var doc = DemoCommand.ToDocument(result);
        doc.Notes("Rewrites", result.Passes.SelectMany(p => p.Changes).ToList());
        ctx.Render(doc);
        return ErrorReporter.Success;
    }
}
