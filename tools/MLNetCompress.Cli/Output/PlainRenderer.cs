using System.Text;

namespace MLNetCompress.Cli.Output;

/// <summary>Writes a <see cref="Document"/> as aligned plain text: no colour, no box drawing, easy to grep and diff.</summary>
internal static class PlainRenderer
{
    public static void Render(TextWriter w, Document doc)
    {
        Block? previous = null;
        foreach (var block in doc.Blocks)
        {
            // Every block opens a new paragraph, except that consecutive text lines stay together.
            if (previous is not null && !(block is TextBlock && previous is TextBlock)) w.WriteLine();
            previous = block;
            switch (block)
            {
                case HeadingBlock h:
                    w.WriteLine($"== {h.Text} ==");
                    break;
                case TextBlock t:
                    w.WriteLine(t.Text);
                    break;
                case FieldsBlock f:
                    int width = f.Fields.Max(x => x.Key.Length);
                    foreach (var (k, v) in f.Fields) w.WriteLine($"{k.PadRight(width)}  {v}");
                    break;
                case TableBlock t:
                    WriteTable(w, t);
                    break;
                case NotesBlock n:
                    w.WriteLine(n.Title);
                    foreach (var note in n.Notes) w.WriteLine($"  - {note}");
                    break;
            }
        }
    }

    private static void WriteTable(TextWriter w, TableBlock t)
    {
        if (t.Title is not null) w.WriteLine(t.Title);
        var all = t.Rows.Prepend(t.Columns.Select(c => c.Header).ToArray()).ToList();
        if (t.Total is not null) all.Add(t.Total);
        var widths = t.Columns.Select((_, k) => all.Max(r => r[k].Length)).ToArray();
        string Line(string[] cells)
        {
            var sb = new StringBuilder("  ");
            for (int k = 0; k < cells.Length; k++)
            {
                if (k > 0) sb.Append("  ");
                sb.Append(t.Columns[k].RightAlign ? cells[k].PadLeft(widths[k]) : cells[k].PadRight(widths[k]));
            }
            return sb.ToString().TrimEnd();
        }
        w.WriteLine(Line(t.Columns.Select(c => c.Header).ToArray()));
        w.WriteLine("  " + string.Join("  ", widths.Select(x => new string('-', x))));
        foreach (var r in t.Rows) w.WriteLine(Line(r));
        if (t.Total is not null)
        {
            w.WriteLine("  " + string.Join("  ", widths.Select(x => new string('-', x))));
            w.WriteLine(Line(t.Total));
        }
    }
}
