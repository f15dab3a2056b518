using System.CommandLine;
using System.Globalization;
using MLNetCompress.Cli.Output;
using MLNetCompress.Inspection;
using MLNetCompress.Packing;

namespace MLNetCompress.Cli.Commands;

/// <summary>
/// <c>pack MODEL -o OUT.mlcz [--quality Q]</c>: writes the entropy-coded container (protobuf skeleton and tensor
/// payloads as separate streams of Brotli-compressed chunks) after checking in memory that it unpacks to the exact model bytes.
/// </summary>
internal static class PackCommand
{
    public static Command Create(Func<ParseResult, CliContext> context)
    {
        var model = new Argument<string>("MODEL") { Description = "The .onnx model to pack (only read)." };
        var output = new Option<string>("--output", "-o") { Description = "The packed model to write (.mlcz).", Required = true, HelpName = "OUT" };
        var quality = new Option<int>("--quality")
        {
            Description = "Brotli quality 0-11 (default 10: within 0.1% of 11's size in about 60% of its time; 9 and below are much faster and about 5% larger).",
            DefaultValueFactory = _ => new PackOptions().Quality,
            HelpName = "Q",
        };
        quality.Validators.Add(r =>
        {
            int v = r.GetValueOrDefault<int>();
            if (v is < 0 or > 11) r.AddError($"--quality {v} is out of range; choose 0 to 11");
        });
        var command = new Command("pack",
            "Write an entropy-coded container (.mlcz) of an ONNX model: the protobuf skeleton and the tensor payloads " +
            "(byte-plane shuffled, integers delta-coded) as separate streams, cut into 1 MiB chunks Brotli-compressed in parallel, with the model's SHA-256. " +
            "'unpack' and PackedModel.Load restore the exact original bytes.")
        {
            model, output, quality,
        };
        command.SetAction((ParseResult r, CancellationToken ct) =>
            Task.FromResult(Run(context(r), r.GetValue(model)!, r.GetValue(output)!, r.GetValue(quality), ct)));
        return command;
    }

    private static int Run(CliContext ctx, string model, string output, int quality, CancellationToken ct)
    {
        ModelFiles.Require(model, "MODEL");
        var bytes = File.ReadAllBytes(model);
        ct.ThrowIfCancellationRequested();
        var result = ModelPacker.Pack(bytes, new PackOptions { Quality = quality });
        // Nothing is written unless the container gives back the very same bytes.
        if (!PackedModel.Unpack(result.Packed).AsSpan().SequenceEqual(bytes))
            throw new InputException($"packing '{model}' did not round-trip exactly; nothing was written");
        ct.ThrowIfCancellationRequested();
        File.WriteAllBytes(output, result.Packed);

        var doc = new Document().Fields(
            ("model", model),
            ("packed", output),
            ("size", $"{Sizes.Format(result.OriginalBytes)} -> {Sizes.Format(result.PackedBytes)} " +
                     $"({result.OriginalBytes.ToString(CultureInfo.InvariantCulture)} -> {result.PackedBytes.ToString(CultureInfo.InvariantCulture)} bytes, " +
                     $"{result.Ratio.ToString("0.00", CultureInfo.InvariantCulture)}x smaller)"),
            ("tensors", $"{result.Tensors.ToString(CultureInfo.InvariantCulture)} payloads coded apart from the skeleton"));
        doc.Table("Streams", [new Column("stream"), new Column("raw", true), new Column("packed", true)],
            result.Streams.Where(s => s.RawBytes > 0).Select(s => new[] { s.Name, Sizes.Format(s.RawBytes), Sizes.Format(s.PackedBytes) }));
        ctx.Render(doc);
        return ErrorReporter.Success;
    }
}
