using System.Globalization;
using System.Text;

namespace MLNetCompress.ML.Distillation;

/// <summary>Soft-label files as CSV: a header line, one line a row, commas, invariant culture. Floats are written in
/// their shortest round-trip form, so reading gives back the same bits. The Id is quoted (RFC 4180) when it holds a
/// comma, a quote or a line break.</summary>
internal static class CsvSoftLabels
{
    private const int ReadBlockRows = 4096;

    /// <summary>The header's column names for a layout.</summary>
    public static List<string> Header(SoftLabelInfo info)
    {
        var names = new List<string> { SoftLabelFile.IdColumn, SoftLabelFile.LabelColumn };
        void Vector(string name, int length)
        {
            for (var i = 0; i < length; i++) names.Add(string.Concat(name, "_", i.ToString(CultureInfo.InvariantCulture)));
        }
        if (info.FeatureLength is int f) Vector(SoftLabelFile.FeaturesColumn, f);
        if (info.TopK is int k)
        {
            Vector(SoftLabelFile.IndicesColumn, k);
            Vector(SoftLabelFile.ValuesColumn, k);
        }
        else
        {
            Vector(SoftLabelFile.SoftLabelColumn, info.Classes);
        }
        return names;
    }

    public static long Write(string path, SoftLabelInfo template, IEnumerable<SoftLabelBlock> blocks)
    {
        long rows = 0;
        using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
        {
            using var writer = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16) { NewLine = "\n" };
            writer.WriteLine(string.Join(',', Header(template)));
            Span<char> buffer = stackalloc char[64];
            foreach (var block in blocks)
            {
                for (var r = 0; r < block.Rows; r++)
                {
                    WriteId(writer, block.Ids[r]);
                    writer.Write(',');
                    WriteInt(writer, block.Labels[r], buffer);
                    if (block.Features is not null) WriteFloats(writer, block.FeatureRow(r), buffer);
                    if (block.Dense is not null)
                    {
                        WriteFloats(writer, block.DenseRow(r), buffer);
                    }
                    else
                    {
                        foreach (var i in block.IndexRow(r))
                        {
                            writer.Write(',');
                            WriteInt(writer, i, buffer);
                        }
                        WriteFloats(writer, block.ValueRow(r), buffer);
                    }
                    writer.Write('\n');
                }
                rows += block.Rows;
            }
            writer.Flush();
            stream.Flush(flushToDisk: true);
        }
        return rows;
    }

    private static void WriteId(TextWriter writer, string id)
    {
        if (id.AsSpan().IndexOfAny(",\"\r\n") < 0)
        {
            writer.Write(id);
            return;
        }
        writer.Write('"');
        writer.Write(id.Replace("\"", "\"\"", StringComparison.Ordinal));
        writer.Write('"');
    }

    private static void WriteInt(TextWriter writer, int value, Span<char> buffer)
    {
        value.TryFormat(buffer, out var n, default, CultureInfo.InvariantCulture);
        writer.Write(buffer[..n]);
    }

    private static void WriteFloats(TextWriter writer, ReadOnlySpan<float> values, Span<char> buffer)
    {
        foreach (var v in values)
        {
            writer.Write(',');
            // The default format of float is the shortest text that parses back to the same value.
            v.TryFormat(buffer, out var n, default, CultureInfo.InvariantCulture);
            writer.Write(buffer[..n]);
        }
    }

    public static IEnumerable<SoftLabelBlock> Read(string path, SoftLabelInfo info)
    {
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, 1 << 16);
        var expected = Header(info);
        var header = reader.ReadLine() ?? throw new SoftLabelException($"'{path}' is empty; regenerate it with soft-labels");
        if (header != string.Join(',', expected))
            throw new SoftLabelException($"the header of '{path}' does not match its description ({expected.Count} columns expected, starting {string.Join(',', expected.Take(3))}); regenerate it");
        var width = expected.Count - 2;
        long line = 1;
        while (true)
        {
            var lines = new List<(string Id, string Tail, long Line)>(ReadBlockRows);
            while (lines.Count < ReadBlockRows && ReadRecord(reader, path, ref line) is { } record) lines.Add(record);
            if (lines.Count == 0) yield break;
            var block = new SoftLabelBlock(lines.Count, info.Classes, info.TopK, info.FeatureLength);
            for (var r = 0; r < lines.Count; r++)
            {
                var (id, rest, at) = lines[r];
                block.Ids[r] = id;
                ParseRow(rest, block, r, width, path, at);
            }
            yield return block;
        }
    }

    // One record: the Id (unquoted, possibly over several lines when quoted) and the rest of the line after its comma.
    private static (string Id, string Tail, long Line)? ReadRecord(TextReader reader, string path, ref long line)
    {
        var text = reader.ReadLine();
        if (text is null) return null;
        line++;
        var start = line;
        if (text.Length == 0 || text[0] != '"')
        {
            var comma = text.IndexOf(',');
            if (comma < 0) throw new SoftLabelException($"line {line} of '{path}' has one field; every row has Id,Label,...; regenerate the file");
            return (text[..comma], text[(comma + 1)..], start);
        }
        var id = new StringBuilder();
        var i = 1;
        while (true)
        {
            if (i >= text.Length)
            {
                // A line break inside the quotes belongs to the Id.
                var next = reader.ReadLine() ?? throw new SoftLabelException($"the quoted Id on line {start} of '{path}' never ends; regenerate the file");
                line++;
                id.Append('\n');
                text = next;
                i = 0;
                continue;
            }
            if (text[i] != '"')
            {
                id.Append(text[i++]);
                continue;
            }
            if (i + 1 < text.Length && text[i + 1] == '"')
            {
                id.Append('"');
                i += 2;
                continue;
            }
            if (i + 1 >= text.Length || text[i + 1] != ',')
                throw new SoftLabelException($"line {line} of '{path}' has text after the quoted Id; regenerate the file");
            return (id.ToString(), text[(i + 2)..], start);
        }
    }

    private static void ParseRow(string rest, SoftLabelBlock block, int row, int width, string path, long line)
    {
        var span = rest.AsSpan();
        var field = 0;
        Span<float> features = block.Features is null ? default : block.FeatureRow(row);
        var f = features.Length;
        foreach (var range in span.Split(','))
        {
            var text = span[range];
            if (field > width)
                throw new SoftLabelException($"line {line} of '{path}' has more than {width + 2} fields; regenerate the file");
            if (field == 0)
            {
                block.Labels[row] = ParseInt(text, path, line);
            }
            else
            {
                var v = field - 1;
                if (v < f) features[v] = ParseFloat(text, path, line);
                else if (block.Dense is not null) block.Dense[row * block.Classes + v - f] = ParseFloat(text, path, line);
                else if (v - f < block.TopK) block.TopIndices![row * block.TopK!.Value + v - f] = ParseInt(text, path, line);
                else block.TopValues![row * block.TopK!.Value + v - f - block.TopK!.Value] = ParseFloat(text, path, line);
            }
            field++;
        }
        if (field != width + 1)
            throw new SoftLabelException($"line {line} of '{path}' has {field + 1} fields, the header {width + 2}; regenerate the file");
    }

    private static int ParseInt(ReadOnlySpan<char> text, string path, long line) =>
        int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new SoftLabelException($"line {line} of '{path}' has '{text}' where a whole number belongs; regenerate the file");

    private static float ParseFloat(ReadOnlySpan<char> text, string path, long line) =>
        float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new SoftLabelException($"line {line} of '{path}' has '{text}' where a number belongs; regenerate the file");
}
