using System.Diagnostics;
using System.Globalization;
using MLNetCompress.Runtime;
using Microsoft.ML.OnnxRuntime;

namespace MLNetCompress.Data;

/// <summary>What a data spec may need besides its text: where relative paths start, the model (to find its
/// companion files), a BERT vocab, the runtime for preprocessing models.</summary>
public sealed record DataSpecOptions
{
    /// <summary>Folder relative paths in a spec are resolved against; null for the current directory.</summary>
    public string? BaseDirectory { get; init; }

    /// <summary>The model's file, when known: preset resnet18-mlnet looks for ResNetPreprocess.onnx near it.</summary>
    public string? ModelPath { get; init; }

    /// <summary>A BERT vocab.txt for text specs without <c>vocab=</c> (the CLI's --vocab).</summary>
    public string? VocabPath { get; init; }

    /// <summary>Opens a BERT vocab.txt (e.g. an embedded resource) when neither <c>vocab=</c> nor
    /// <see cref="VocabPath"/> is given. The stream is disposed after reading.</summary>
    public Func<Stream>? OpenVocab { get; init; }

    /// <summary>ResNetPreprocess.onnx for preset resnet18-mlnet when the spec has no <c>prep=</c>.</summary>
    public string? PreprocessModelPath { get; init; }

    /// <summary>Runtime options for preprocessing models run while building a feed.</summary>
    public RuntimeOptions? Runtime { get; init; }
}

/// <summary>Turns a data spec string into an <see cref="IDataFeed"/> shaped to a model's inputs. The same specs
/// serve every command. Syntax: <c>KIND[:ARG][?key=value&amp;key=value]</c>.
/// <list type="bullet">
/// <item><c>fashion-mnist:DIR[:train|test][?mean=M&amp;std=S&amp;split=train|test]</c> — gzipped IDX files
/// (t10k-images-idx3-ubyte.gz ...), test split by default; pixels <c>(p/255 - mean)/std</c> (defaults 0 and 1),
/// shaped [N,1,28,28], [N,784], [N,28,28] or [N,28,28,1] as the model wants; labels attached.
/// Example: <c>fashion-mnist:data/fm:test?mean=0.2860&amp;std=0.3530</c>.</item>
/// <item><c>images:DIR[?preset=resnet|resnet18-mlnet|raw&amp;size=S&amp;resize=R&amp;scale=F&amp;mean=a,b,c&amp;std=a,b,c&amp;order=rgb|bgr&amp;prep=FILE]</c>
/// — .jpg/.png/.bmp files sorted by name; shorter side resized to R, center crop S, then normalised.
/// preset resnet (default): R 256, S 224, 0..1, ImageNet mean/std, RGB. raw: R = S, 0..255, RGB.
/// resnet18-mlnet: what ML.NET's ResNet18 featurizer feeds ResNet18.onnx (224 IsoCrop, 0..255, BGR, minus the mean
/// image of ResNetPreprocess.onnx, found with <c>prep=</c>, <see cref="DataSpecOptions.PreprocessModelPath"/>, or
/// beside the model as ../ResNetPrepOnnx/ResNetPreprocess.onnx). S defaults to the model's fixed height.</item>
/// <item><c>npy:FILE</c> — a .npy array (v1–v3, little-endian &lt;f4 &lt;f8 &lt;i4 &lt;i8, C order), first axis rows.</item>
/// <item><c>text:FILE[?max-len=128&amp;vocab=FILE&amp;lower=true|false]</c> — one sentence a line, BERT WordPiece;
/// the vocab comes from <c>vocab=</c>, <see cref="DataSpecOptions.VocabPath"/> or <see cref="DataSpecOptions.OpenVocab"/>.</item>
/// <item><c>random[?seed=1&amp;rows=32]</c> — deterministic uniform data shaped to the model, for smoke tests.</item>
/// </list>
/// Errors are <see cref="DataSpecException"/> with a one-line message.</summary>
public static class DataSpec
{
    /// <summary>The accepted kinds, as error messages list them.</summary>
    public const string Expected = "fashion-mnist:DIR[:train|test], images:DIR, npy:FILE, text:FILE, random";

    /// <summary>Builds the feed for <paramref name="spec"/> against the inputs of a loaded session.</summary>
    public static IDataFeed Parse(string spec, InferenceSession session, DataSpecOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(session);
        return Parse(spec, ModelInputInfo.FromSession(session), options);
    }

    /// <summary>Builds the feed for <paramref name="spec"/> against <paramref name="inputs"/>.</summary>
    /// <exception cref="DataSpecException">The spec is malformed, a file is missing or malformed, or the data does not fit the inputs.</exception>
    public static IDataFeed Parse(string spec, IReadOnlyList<ModelInputInfo> inputs, DataSpecOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(inputs);
        options ??= new DataSpecOptions();
        spec = spec.Trim();
        var q = spec.IndexOf('?');
        var body = q < 0 ? spec : spec[..q];
        var colon = body.IndexOf(':');
        var kind = (colon < 0 ? body : body[..colon]).Trim().ToLowerInvariant();
        var arg = colon < 0 ? null : body[(colon + 1)..];
        if (kind is not ("fashion-mnist" or "images" or "npy" or "text" or "random"))
            throw new DataSpecException($"unknown data spec '{(colon < 0 ? body : body[..(colon + 1)])}'; expected one of {Expected}");
        var query = new Query(kind, q < 0 ? "" : spec[(q + 1)..]);

        var feed = kind switch
        {
            "fashion-mnist" => FashionMnist(Required(kind, arg, "fashion-mnist:DIR[:train|test]"), query, inputs, options),
            "images" => Images(Required(kind, arg, "images:DIR"), query, inputs, options),
            "npy" => Npy(Required(kind, arg, "npy:FILE"), query, inputs, options),
            "text" => Text(Required(kind, arg, "text:FILE"), query, inputs, options),
            "random" when string.IsNullOrEmpty(arg) => Random(query, inputs),
            "random" => throw new DataSpecException($"random takes no argument, only options: random?seed=1&rows=32 (got 'random:{arg}')"),
            _ => throw new UnreachableException(),
        };
        query.EnsureAllUsed();
        return feed;
    }

    private static IDataFeed FashionMnist(string arg, Query query, IReadOnlyList<ModelInputInfo> inputs, DataSpecOptions options)
    {
        var split = FashionMnistSplit.Test;
        var dir = arg;
        var last = arg.LastIndexOf(':');
        if (last >= 0 && TryParseSplit(arg[(last + 1)..], out var s))
        {
            split = s;
            dir = arg[..last];
        }
        if (query.Take("split") is { } splitText)
        {
            if (!TryParseSplit(splitText, out split)) throw new DataSpecException($"fashion-mnist split must be train or test, got '{splitText}'");
        }
        var mean = query.TakeFloat("mean") ?? 0f;
        var std = query.TakeFloat("std") ?? 1f;
        return new FashionMnistFeed(Resolve(dir, options), inputs, split, mean, std);
    }

    private static IDataFeed Images(string arg, Query query, IReadOnlyList<ModelInputInfo> inputs, DataSpecOptions options)
    {
        var presetName = (query.Take("preset") ?? "resnet").ToLowerInvariant();
        var prep = query.Take("prep");
        var modelSize = inputs.Count == 1 && inputs[0].Rank == 4
            ? (inputs[0].Dims[1] == 3 || inputs[0].Dims[3] != 3 ? inputs[0].Dims[2] : inputs[0].Dims[1])
            : -1;
        var size = query.TakeInt("size") ?? (modelSize > 0 ? (int)modelSize : 224);
        ImagePreprocessing p = presetName switch
        {
            "resnet" or "imagenet" => ImagePreprocessing.ResNet with { CropSize = size, ResizeShorter = (int)Math.Round(size * 256.0 / 224.0) },
            "raw" => ImagePreprocessing.Raw(size),
            "resnet18-mlnet" => ImagePreprocessing.ResNet18MLNet(FindPreprocessModel(prep, options), options.Runtime),
            _ => throw new DataSpecException($"unknown images preset '{presetName}'; expected resnet, resnet18-mlnet or raw"),
        };
        if (presetName == "resnet18-mlnet" && query.Has("size") && size != p.CropSize)
            throw new DataSpecException($"preset resnet18-mlnet gives {p.CropSize}x{p.CropSize} images; size={size} does not fit its mean image");
        if (query.TakeInt("resize") is int resize) p = p with { ResizeShorter = resize };
        if (query.TakeFloat("scale") is float scale) p = p with { Scale = scale };
        if (query.TakeFloats("mean") is { } mean) p = p with { Mean = mean };
        if (query.TakeFloats("std") is { } std) p = p with { Std = std };
        if (query.Take("order") is { } order)
        {
            p = order.ToLowerInvariant() switch
            {
                "rgb" => p with { Bgr = false },
                "bgr" => p with { Bgr = true },
                _ => throw new DataSpecException($"images order must be rgb or bgr, got '{order}'"),
            };
        }
        return new ImageFolderFeed(Resolve(arg, options), p, inputs);
    }

    private static IDataFeed Npy(string arg, Query query, IReadOnlyList<ModelInputInfo> inputs, DataSpecOptions options)
    {
        var path = Resolve(arg, options);
        if (!File.Exists(path)) throw new DataSpecException($"npy file {path} does not exist");
        return new NpyFeed(path, inputs);
    }

    private static IDataFeed Text(string arg, Query query, IReadOnlyList<ModelInputInfo> inputs, DataSpecOptions options)
    {
        var path = Resolve(arg, options);
        if (!File.Exists(path)) throw new DataSpecException($"text file {path} does not exist");
        var maxLength = query.TakeInt("max-len") ?? TextFeed.DefaultMaxLength;
        var lower = query.TakeBool("lower") ?? true;
        var vocabPath = query.Take("vocab") is { } v ? Resolve(v, options) : options.VocabPath;
        Stream vocab;
        if (vocabPath is not null)
        {
            if (!File.Exists(vocabPath)) throw new DataSpecException($"vocab file {vocabPath} does not exist");
            vocab = File.OpenRead(vocabPath);
        }
        else if (options.OpenVocab is not null)
        {
            vocab = options.OpenVocab();
        }
        else
        {
            throw new DataSpecException("text needs a BERT vocab.txt: give text:FILE?vocab=PATH (or --vocab)");
        }
        using (vocab)
            return new TextFeed(path, vocab, inputs, maxLength, lower);
    }

    private static IDataFeed Random(Query query, IReadOnlyList<ModelInputInfo> inputs)
    {
        var seed = query.TakeInt("seed") ?? 1;
        var rows = query.TakeInt("rows") ?? 32;
        if (rows < 1) throw new DataSpecException($"random rows must be positive, got {rows}");
        return new RandomFeed(inputs, rows, seed);
    }

    private static string FindPreprocessModel(string? prep, DataSpecOptions options)
    {
        if (prep is not null) return Resolve(prep, options);
        if (options.PreprocessModelPath is not null) return options.PreprocessModelPath;
        if (options.ModelPath is not null)
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(options.ModelPath)) ?? ".";
            foreach (var candidate in new[] { Path.Combine(dir, "..", "ResNetPrepOnnx", "ResNetPreprocess.onnx"), Path.Combine(dir, "ResNetPreprocess.onnx") })
                if (File.Exists(candidate)) return Path.GetFullPath(candidate);
        }
        throw new DataSpecException("preset resnet18-mlnet needs ResNetPreprocess.onnx (from Microsoft.ML.DnnImageFeaturizer.ResNet18): give images:DIR?preset=resnet18-mlnet&prep=PATH");
    }

    private static bool TryParseSplit(string text, out FashionMnistSplit split)
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "test": split = FashionMnistSplit.Test; return true;
            case "train": split = FashionMnistSplit.Train; return true;
            default: split = default; return false;
        }
    }

    private static string Required(string kind, string? arg, string usage) =>
        string.IsNullOrWhiteSpace(arg) ? throw new DataSpecException($"{kind} needs a path: {usage}") : arg.Trim();

    private static string Resolve(string path, DataSpecOptions options) =>
        Path.GetFullPath(path, options.BaseDirectory is null ? Environment.CurrentDirectory : Path.GetFullPath(options.BaseDirectory));

    // The ?key=value&key=value part: every key must be known to its kind and given once.
    private sealed class Query
    {
        private readonly string _kind;
        private readonly Dictionary<string, string> _values = new(StringComparer.OrdinalIgnoreCase);

        public Query(string kind, string text)
        {
            _kind = kind;
            foreach (var part in text.Split('&', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var eq = part.IndexOf('=');
                if (eq <= 0) throw new DataSpecException($"{kind} option '{part}' is not key=value");
                var key = part[..eq].Trim();
                if (!Known(kind).Contains(key, StringComparer.OrdinalIgnoreCase))
                    throw new DataSpecException($"unknown option '{key}' for {kind}; it takes {(Known(kind).Length == 0 ? "no options" : string.Join(", ", Known(kind)))}");
                if (!_values.TryAdd(key, part[(eq + 1)..].Trim())) throw new DataSpecException($"{kind} option '{key}' is given twice");
            }
        }

        public bool Has(string key) => _values.ContainsKey(key) || _taken.Contains(key);

        private readonly HashSet<string> _taken = new(StringComparer.OrdinalIgnoreCase);

        public string? Take(string key)
        {
            if (!_values.Remove(key, out var value)) return null;
            _taken.Add(key);
            return value;
        }

        public int? TakeInt(string key) => Take(key) is { } v
            ? int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) ? i : throw new DataSpecException($"{_kind} option {key} must be an integer, got '{v}'")
            : null;

        public float? TakeFloat(string key) => Take(key) is { } v
            ? float.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && float.IsFinite(f) ? f : throw new DataSpecException($"{_kind} option {key} must be a number, got '{v}'")
            : null;

        public bool? TakeBool(string key) => Take(key) is { } v
            ? bool.TryParse(v, out var b) ? b : throw new DataSpecException($"{_kind} option {key} must be true or false, got '{v}'")
            : null;

        public float[]? TakeFloats(string key)
        {
            if (Take(key) is not { } v) return null;
            var parts = v.Split(',', StringSplitOptions.TrimEntries);
            var values = new float[parts.Length];
            for (var i = 0; i < parts.Length; i++)
                if (!float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) || !float.IsFinite(values[i]))
                    throw new DataSpecException($"{_kind} option {key} must be comma-separated numbers, got '{v}'");
            return values;
        }

        // Options a kind reads only in some cases (e.g. a preset's) must still not pass unnoticed.
        public void EnsureAllUsed()
        {
            foreach (var key in _values.Keys)
                throw new DataSpecException($"option '{key}' has no effect for {_kind} here");
        }

        private static string[] Known(string kind) => kind switch
        {
            "fashion-mnist" => ["mean", "std", "split"],
            "images" => ["preset", "size", "resize", "scale", "mean", "std", "order", "prep"],
            "text" => ["max-len", "vocab", "lower"],
            "random" => ["seed", "rows"],
            _ => [],
        };
    }
}
