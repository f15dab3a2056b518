namespace MLNetCompress.Cli.Output;

/// <summary>A column of a <see cref="TableBlock"/>; numbers are right-aligned.</summary>
internal sealed record Column(string Header, bool RightAlign = false);

/// <summary>One piece of command output.</summary>
internal abstract record Block;

/// <summary>A section title.</summary>
internal sealed record HeadingBlock(string Text) : Block;

/// <summary>Label/value lines ("IR  3").</summary>
internal sealed record FieldsBlock(IReadOnlyList<KeyValuePair<string, string>> Fields) : Block;

/// <summary>A table with an optional title and an optional last (total) row set apart.</summary>
internal sealed record TableBlock(string? Title, IReadOnlyList<Column> Columns, IReadOnlyList<string[]> Rows, string[]? Total = null) : Block;

/// <summary>A titled list of remarks.</summary>
internal sealed record NotesBlock(string Title, IReadOnlyList<string> Notes) : Block;

/// <summary>A line of prose.</summary>
internal sealed record TextBlock(string Text) : Block;

/// <summary>
/// What a command prints, independent of how: <see cref="SpectreRenderer"/> draws it for a terminal,
/// <see cref="PlainRenderer"/> writes aligned plain text when output is redirected (and for tests).
/// </summary>
internal sealed class Document
{
    private readonly List<Block> blocks = [];

    public IReadOnlyList<Block> Blocks => blocks;

    public Document Heading(string text) { blocks.Add(new HeadingBlock(text)); return this; }

    public Document Text(string text) { blocks.Add(new TextBlock(text)); return this; }

    public Document Fields(params (string Key, string Value)[] fields)
    {
        blocks.Add(new FieldsBlock(fields.Select(f => KeyValuePair.Create(f.Key, f.Value)).ToList()));
        return this;
    }

    public Document Table(string? title, IReadOnlyList<Column> columns, IEnumerable<string[]> rows, string[]? total = null)
    {
        var list = rows.ToList();
        foreach (var r in list.Append(total ?? new string[columns.Count]))
            if (r.Length != columns.Count) throw new ArgumentException($"a row of table '{title}' has {r.Length} cells for {columns.Count} columns");
        blocks.Add(new TableBlock(title, columns, list, total));
        return this;
    }

    public Document Notes(string title, IReadOnlyList<string> notes)
    {
        if (notes.Count > 0) blocks.Add(new NotesBlock(title, notes));
        return this;
    }
}
