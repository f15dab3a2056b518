using System.CommandLine;
using System.Globalization;
using MLNetCompress.Cli.Output;
using MLNetCompress.Inspection;

namespace MLNetCompress.Cli.Commands;

/// <summary><c>inspect MODEL [--json]</c>: what is in a model and where its bytes go.</summary>
internal static class InspectCommand
{
    public static Command Create(Func<ParseResult, CliContext> context)
    {
        var model = new Argument<string>("MODEL") { Description = "The .onnx model file (external data is read from its folder)." };
        var json = new Option<bool>("--json") { Description = "Print the report as JSON (camelCase) instead of tables." };
        var command = new Command("inspect",
            "Describe a model: IR and opsets, inputs and outputs, operator counts, parameters per type, " +
            "where the weights are stored, a per-layer weight table (shape, size, sparsity, storage type) and notes.")
        {
            model, json,
        };
        command.SetAction(async (ParseResult r, CancellationToken ct) =>
        {
            var ctx = context(r);
            var path = r.GetValue(model)!;
            ModelFiles.Require(path, "model file");
            // Reading a model of a gigabyte or more takes a while: a spinner shows it is working (terminal only).
            var report = await ProgressBar.RunAsync(ctx, "reading " + Path.GetFileName(path), _ => ModelInspector.Inspect(path), ct).ConfigureAwait(false);
            if (r.GetValue(json)) ctx.WriteRaw(report.ToJson());
            else ctx.Render(ToDocument(report));
            return ErrorReporter.Success;
        });
        return command;
    }

    internal static Document ToDocument(InspectionReport r)
    {
        var doc = new Document();
        doc.Heading(r.Path is null ? "model" : Path.GetFileName(r.Path));
        var fields = new List<(string, string)>();
        if (r.Path is not null) fields.Add(("path", r.Path));
        if (r.SizeOnDisk is long disk)
            fields.Add(("size on disk", r.FileBytes is long file && file != disk
                ? $"{Sizes.Format(disk)} ({N(disk)} bytes; .onnx file {N(file)} bytes, the rest external data)"
                : $"{Sizes.Format(disk)} ({N(disk)} bytes)"));
        fields.Add(("IR version", N(r.IrVersion)));
        fields.Add(("opsets", string.Join(", ", r.Opsets.Select(o => $"{o.Domain} {o.Version}"))));
        fields.Add(("producer", r.Producer.Length > 0 ? r.Producer : "(not stated)"));
        fields.Add(("nodes", r.Subgraphs > 0 ? $"{N(r.TotalNodes)} ({N(r.MainGraphNodes)} in the main graph, {r.Subgraphs} subgraphs)" : N(r.TotalNodes)));
        fields.Add(("parameters", $"{Sizes.FormatCount(r.Parameters.Total)} ({N(r.Parameters.Total)}) in {Sizes.Format(r.Parameters.Bytes)}"));
        doc.Fields([.. fields]);

        Column[] io = [new("name"), new("type"), new("shape")];
        doc.Table("Inputs", io, r.Inputs.Select(v => new[] { v.Name, v.ElementType, Shape(v.Shape) }));
        doc.Table("Outputs", io, r.Outputs.Select(v => new[] { v.Name, v.ElementType, Shape(v.Shape) }));

        doc.Table("Operators", [new("op"), new("count", true)],
            r.Operators.Select(o => new[] { o.Op, N(o.Count) }),
            ["total", N(r.Operators.Sum(o => o.Count))]);

        doc.Table("Parameters by type", [new("type"), new("tensors", true), new("parameters", true), new("bytes", true)],
            r.Parameters.ByDataType.Select(t => new[] { t.DataType, N(t.Tensors), N(t.Parameters), Sizes.Format(t.Bytes) }),
            ["total", N(r.Parameters.ByDataType.Sum(t => t.Tensors)), N(r.Parameters.Total), Sizes.Format(r.Parameters.Bytes)]);

        var w = r.WeightLocations;
        (string Label, TensorGroup Group)[] places =
        [
            ("initializers", w.Initializers), ("Constant nodes", w.ConstantNodes), ("in subgraphs", w.InSubgraphs),
            ("sparse initializers", w.SparseInitializers), ("of these, external data", w.ExternalData),
        ];
        doc.Table("Where the weights live", [new("stored as"), new("tensors", true), new("parameters", true), new("bytes", true)],
            places.Select(p => new[] { p.Label, N(p.Group.Tensors), N(p.Group.Parameters), Sizes.Format(p.Group.Bytes) }));

        if (r.Layers.Count > 0)
        {
            bool anyVia = r.Layers.Any(l => l.Via.Count > 0);
            bool anySub = r.Layers.Any(l => l.Graph != "main");
            var columns = new List<Column> { new("node"), new("op"), new("weight"), new("shape"), new("params", true), new("bytes", true), new("stored"), new("sparsity", true) };
            if (anyVia) columns.Add(new("via"));
            if (anySub) columns.Add(new("graph"));
            var rows = r.Layers.Select(l =>
            {
                var row = new List<string>
                {
                    l.Node, l.Op, l.Weight, "[" + string.Join(",", l.Shape) + "]", N(l.Parameters), Sizes.Format(l.Bytes),
                    l.StorageType, Percent(l.Sparsity),
                };
                if (anyVia) row.Add(l.Via.Count > 0 ? string.Join(" <- ", l.Via) : "");
                if (anySub) row.Add(l.Graph);
                return row.ToArray();
            });
            var total = new List<string> { $"{r.Layers.Count} layers", "", "", "", N(r.Layers.Sum(l => l.Parameters)), Sizes.Format(r.Layers.Sum(l => l.Bytes)), "", "" };
            if (anyVia) total.Add("");
            if (anySub) total.Add("");
            doc.Table("Layers with constant weights", columns, rows, [.. total]);
        }
        else
        {
            doc.Text("No Conv/ConvTranspose/Gemm/MatMul layer with a constant weight.");
        }
        doc.Notes("Notes", r.Notes);
        return doc;
    }

    // A few zeros in millions must not print as a flat "0.0%".
    private static string Percent(double? fraction) => fraction switch
    {
        null => "?",
        0 => "0%",
        < 0.0005 => "<0.1%",
        double f => f.ToString("0.0%", CultureInfo.InvariantCulture),
    };

    private static string Shape(IReadOnlyList<string>? shape) => shape is null ? "(unknown)" : "[" + string.Join(",", shape) + "]";

    private static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);
}
