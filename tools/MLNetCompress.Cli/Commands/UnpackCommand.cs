using System.CommandLine;
using System.Globalization;
using MLNetCompress.Cli.Output;
using MLNetCompress.Inspection;
using MLNetCompress.Packing;

namespace MLNetCompress.Cli.Commands;

/// <summary><c>unpack IN.mlcz -o OUT.onnx</c>: restores the exact ONNX bytes of a packed model (checked against its SHA-256).</summary>
internal static class UnpackCommand
{
    public static Command Create(Func<ParseResult, CliContext> context)
    {
        var packed = new Argument<string>("IN") { Description = "The packed model (.mlcz) to unpack (only read)." };
        var output = new Option<string>("--output", "-o") { Description = "The .onnx model to write.", Required = true, HelpName = "OUT" };
        var command = new Command("unpack",
            "Restore the exact ONNX model from a container written by 'pack'; damaged or truncated files are refused " +
            "(lengths and the SHA-256 of the original are checked) and nothing is written.")
        {
            packed, output,
        };
        command.SetAction((ParseResult r, CancellationToken ct) =>
            Task.FromResult(Run(context(r), r.GetValue(packed)!, r.GetValue(output)!)));
        return command;
    }

    private static int Run(CliContext ctx, string input, string output)
    {
        ModelFiles.Require(input, "IN");
        var data = File.ReadAllBytes(input);
        byte[] model;
        try
        {
            model = PackedModel.Unpack(data);
        }
        catch (PackedModelException e)
        {
            throw new InputException($"'{input}': {e.Message.TrimEnd('.')}");
        }
        File.WriteAllBytes(output, model);
        ctx.Render(new Document().Fields(
            ("packed", input),
            ("model", output),
            ("size", $"{Sizes.Format(data.LongLength)} -> {Sizes.Format(model.LongLength)} " +
                     $"({data.LongLength.ToString(CultureInfo.InvariantCulture)} -> {model.LongLength.ToString(CultureInfo.InvariantCulture)} bytes), SHA-256 verified")));
        return ErrorReporter.Success;
    }
}
