using System.Globalization;
using Microsoft.ML.OnnxRuntime.Tensors;
using Microsoft.ML.Tokenizers;

namespace MLNetCompress.Data;

/// <summary>Sentences (one a line) through a BERT WordPiece tokenizer: [CLS] tokens [SEP], cut to a maximum
/// length, padded per batch to its longest row (or to the model's fixed sequence length). Fills the model's
/// int64 inputs by name: ids (e.g. input_ids), attention mask (a name with "mask") and token types (a name with
/// "type" or "segment", all 0).</summary>
public sealed class TextFeed : DataFeed
{
    /// <summary>The default maximum tokens per row, [CLS] and [SEP] included.</summary>
    public const int DefaultMaxLength = 128;

    private readonly IReadOnlyList<string> _sentences;
    private readonly IReadOnlyList<string> _ids;
    private readonly string _name;
    private readonly string? _idsInput;
    private readonly string? _maskInput;
    private readonly string? _typesInput;
    private readonly int _fixedLength;

    /// <summary>Reads the non-empty lines of <paramref name="path"/> and tokenizes them with the vocab in
    /// <paramref name="vocab"/> (a BERT vocab.txt, one token a line).</summary>
    /// <param name="path">UTF-8 text, one sentence a line; blank lines are skipped.</param>
    /// <param name="vocab">The vocab.txt content; read here, not disposed.</param>
    /// <param name="inputs">The model's inputs.</param>
    /// <param name="maxLength">Maximum tokens per row including [CLS] and [SEP]; at least 2.</param>
    /// <param name="lowerCase">Lower-case before tokenizing (uncased models, e.g. MiniLM).</param>
    public TextFeed(string path, Stream vocab, IReadOnlyList<ModelInputInfo> inputs, int maxLength = DefaultMaxLength, bool lowerCase = true)
        : this(ReadLines(path, out var lineIds), CreateTokenizer(vocab, lowerCase), inputs, maxLength, lineIds, $"text {Path.GetFileName(path)}") { }

    /// <summary>Feeds sentences given in memory.</summary>
    /// <param name="sentences">One row each.</param>
    /// <param name="tokenizer">A BERT tokenizer (see <see cref="CreateTokenizer"/>).</param>
    /// <param name="inputs">The model's inputs.</param>
    /// <param name="maxLength">Maximum tokens per row including [CLS] and [SEP]; at least 2.</param>
    /// <param name="ids">One id per sentence, or null for "line#i".</param>
    /// <param name="name">What to call the data in descriptions.</param>
    public TextFeed(IReadOnlyList<string> sentences, BertTokenizer tokenizer, IReadOnlyList<ModelInputInfo> inputs, int maxLength = DefaultMaxLength, IReadOnlyList<string>? ids = null, string name = "text")
        : base(inputs)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (maxLength < 2) throw new DataSpecException($"text max-len must be at least 2 ([CLS] and [SEP]), got {maxLength}");
        if (ids is not null && ids.Count != sentences.Count) throw new ArgumentException($"{ids.Count} ids for {sentences.Count} sentences", nameof(ids));
        _sentences = sentences;
        _ids = ids ?? Enumerable.Range(0, sentences.Count).Select(i => "line#" + i.ToString(CultureInfo.InvariantCulture)).ToArray();
        _name = name;
        Tokenizer = tokenizer;

        foreach (var input in inputs)
        {
            var n = input.Name;
            if (input.ElementType != TensorElementType.Int64)
                throw new DataSpecException($"text gives int64 token tensors but model input '{n}' wants {input.ElementType}");
            if (input.Rank is not (0 or 2))
                throw new DataSpecException($"text gives [N,L] but model input '{n}' wants {input.FormatShape()}");
            ref var slot = ref _idsInput;
            if (n.Contains("mask", StringComparison.OrdinalIgnoreCase)) slot = ref _maskInput;
            else if (n.Contains("type", StringComparison.OrdinalIgnoreCase) || n.Contains("segment", StringComparison.OrdinalIgnoreCase)) slot = ref _typesInput;
            else if (!n.Contains("id", StringComparison.OrdinalIgnoreCase) && !n.Contains("input", StringComparison.OrdinalIgnoreCase))
                throw new DataSpecException($"text fills input_ids, attention_mask and token_type_ids but model input '{n}' is none of them");
            if (slot is not null) throw new DataSpecException($"text cannot tell model inputs '{slot}' and '{n}' apart");
            slot = n;
            if (input.Rank == 2 && input.Dims[1] > 0)
            {
                if (_fixedLength != 0 && _fixedLength != input.Dims[1])
                    throw new DataSpecException($"model inputs disagree on the sequence length: '{n}' wants {input.Dims[1]}, another {_fixedLength}");
                _fixedLength = checked((int)input.Dims[1]);
            }
        }
        if (_idsInput is null)
            throw new DataSpecException($"text needs a token-ids input but the model has {string.Join(", ", inputs.Select(i => $"'{i.Name}'"))}");
        MaxLength = _fixedLength > 0 ? Math.Min(maxLength, _fixedLength) : maxLength;
    }

    /// <summary>The tokenizer in use.</summary>
    public BertTokenizer Tokenizer { get; }

    /// <summary>Maximum tokens per row, [CLS] and [SEP] included.</summary>
    public int MaxLength { get; }

    /// <inheritdoc />
    public override long RowCount => _sentences.Count;

    /// <inheritdoc />
    public override bool HasLabels => false;

    /// <inheritdoc />
    public override string Description =>
        $"{_name}, {RowCount} sentences, up to {MaxLength} tokens{(_fixedLength > 0 ? $", padded to {_fixedLength}" : "")}";

    /// <summary>A BERT WordPiece tokenizer over a vocab.txt stream.</summary>
    public static BertTokenizer CreateTokenizer(Stream vocab, bool lowerCase = true)
    {
        ArgumentNullException.ThrowIfNull(vocab);
        try
        {
            return BertTokenizer.Create(vocab, new BertOptions { LowerCaseBeforeTokenization = lowerCase });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or IOException)
        {
            throw new DataSpecException($"cannot read the BERT vocab: {e.Message}", e);
        }
    }

    /// <inheritdoc />
    protected override DataBatch CreateBatch(long start, int count)
    {
        var tokens = new IReadOnlyList<int>[count];
        var longest = 0;
        for (var r = 0; r < count; r++)
        {
            tokens[r] = Tokenizer.EncodeToIds(_sentences[(int)start + r], addSpecialTokens: false, considerPreTokenization: true, considerNormalization: true);
            longest = Math.Max(longest, Math.Min(tokens[r].Count, MaxLength - 2) + 2);
        }
        var width = _fixedLength > 0 ? _fixedLength : longest;
        var ids = new long[(long)count * width];
        var mask = _maskInput is null ? null : new long[ids.Length];
        long pad = Tokenizer.PaddingTokenId;
        if (pad != 0) ids.AsSpan().Fill(pad);
        for (var r = 0; r < count; r++)
        {
            var row = ids.AsSpan(r * width, width);
            var n = Math.Min(tokens[r].Count, MaxLength - 2);
            row[0] = Tokenizer.ClassificationTokenId;
            for (var i = 0; i < n; i++) row[i + 1] = tokens[r][i];
            row[n + 1] = Tokenizer.SeparatorTokenId;
            mask?.AsSpan(r * width, n + 2).Fill(1);
        }
        long[] shape = [count, width];
        var inputs = new Dictionary<string, NamedTensor>(3) { [_idsInput!] = new NamedTensor(ids, shape) };
        if (_maskInput is not null) inputs[_maskInput] = new NamedTensor(mask!, shape);
        if (_typesInput is not null) inputs[_typesInput] = new NamedTensor(new long[ids.Length], shape);
        var rowIds = new string[count];
        for (var r = 0; r < count; r++) rowIds[r] = _ids[(int)start + r];
        return new DataBatch(inputs, count, start, rowIds);
    }

    private static string[] ReadLines(string path, out string[] ids)
    {
        ArgumentNullException.ThrowIfNull(path);
        string[] all;
        try
        {
            all = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataSpecException($"cannot read text file {path}: {e.Message}", e);
        }
        var lines = new List<string>(all.Length);
        var lineIds = new List<string>(all.Length);
        for (var i = 0; i < all.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(all[i])) continue;
            lines.Add(all[i]);
            lineIds.Add("line " + (i + 1).ToString(CultureInfo.InvariantCulture));
        }
        if (lines.Count == 0) throw new DataSpecException($"text file {path} has no non-empty lines");
        ids = lineIds.ToArray();
        return lines.ToArray();
    }
}
