using Spectre.Console;

namespace MLNetCompress.Cli.Output;

/// <summary>Draws a <see cref="Document"/> on a terminal with Spectre.Console: rules, grids and rounded tables.</summary>
internal static class SpectreRenderer
{
    public static void Render(IAnsiConsole console, Document doc)
    {
        foreach (var block in doc.Blocks)
        {
            switch (block)
            {
                case HeadingBlock h:
                    console.Write(new Rule($"[bold]{Markup.Escape(h.Text)}[/]") { Justification = Justify.Left });
                    break;
                case TextBlock t:
                    console.WriteLine(t.Text);
                    break;
                case FieldsBlock f:
                    var grid = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
                    foreach (var (k, v) in f.Fields) grid.AddRow(new Markup($"[grey]{Markup.Escape(k)}[/]"), new Text(v));
                    console.Write(grid);
                    break;
                case TableBlock t:
                    console.Write(BuildTable(t, console.Profile.Width));
                    break;
                case NotesBlock n:
                    console.MarkupLine($"[bold]{Markup.Escape(n.Title)}[/]");
                    foreach (var note in n.Notes) console.MarkupLine($"  [yellow]•[/] {Markup.Escape(note)}");
                    break;
            }
            if (block is not TextBlock) console.WriteLine();
        }
    }

    private static Table BuildTable(TableBlock t, int consoleWidth)
    {
        var table = new Table().Border(TableBorder.Rounded);
        if (t.Title is not null) table.Title = new TableTitle(t.Title, new Style(decoration: Decoration.Bold));
        // When the table is wider than the terminal, Spectre wraps cells. Numbers must not wrap (a size split
        // over two lines misreads), so their columns keep their width and put each header word on its own line;
        // the text columns take the squeeze.
        var rows = t.Total is null ? t.Rows : t.Rows.Append(t.Total);
        int natural = 1 + t.Columns.Select((c, k) => Math.Max(c.Header.Length, rows.Select(r => r[k].Length).DefaultIfEmpty(0).Max()) + 3).Sum();
        bool narrow = natural > consoleWidth;
        foreach (var c in t.Columns)
        {
            var header = narrow && c.RightAlign ? c.Header.Replace(' ', '\n') : c.Header;
            var column = new TableColumn(new Markup($"[bold]{Markup.Escape(header)}[/]"));
            if (c.RightAlign) column.RightAligned();
            if (narrow && c.RightAlign) column.NoWrap();
            table.AddColumn(column);
        }
        foreach (var r in t.Rows) table.AddRow(r.Select(cell => (Spectre.Console.Rendering.IRenderable)new Text(cell)).ToArray());
        if (t.Total is not null)
        {
            table.ShowFooters = true;
            for (int k = 0; k < t.Columns.Count; k++)
                table.Columns[k].Footer = new Markup($"[bold]{Markup.Escape(t.Total[k])}[/]");
        }
        return table;
    }
}
