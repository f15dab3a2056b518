using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using MLNetCompress.Calibration;
using MLNetCompress.LowRank;
using MLNetCompress.Pruning;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Runtime;

namespace MLNetCompress.Recipes;

/// <summary>
/// How recipes are read and written: camelCase fields, enums as kebab-case strings (<c>"u8"</c>, <c>"percentile"</c>),
/// sets as arrays, N:M patterns as <c>"2:4"</c>, unknown fields refused, <c>//</c> comments allowed. Options records
/// are written without the fields left at their defaults, and without the members the runner fills in (the calibration
/// data, the runtime, the prune step's options in reconstruct).
/// </summary>
public static class RecipeJson
{
    // Members of options records that the runner fills in; they are not part of a recipe.
    private static readonly Dictionary<Type, string[]> RunnerFilled = new()
    {
        [typeof(QdqOptions)] = [nameof(QdqOptions.Calibration)],
        [typeof(ReconstructionOptions)] = [nameof(ReconstructionOptions.Pruning), nameof(ReconstructionOptions.Calibration)],
        [typeof(LowRankOptions)] = [nameof(LowRankOptions.Calibration)],
        [typeof(CalibrationOptions)] = [nameof(CalibrationOptions.Runtime), nameof(CalibrationOptions.Log)],
    };

    private static readonly ConcurrentDictionary<Type, object> Defaults = new();

    /// <summary>The serializer options recipes are read and written with.</summary>
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    private static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
            WriteIndented = true,
            ReadCommentHandling = JsonCommentHandling.Skip,
            AllowTrailingCommas = true,
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            TypeInfoResolver = new DefaultJsonTypeInfoResolver { Modifiers = { Shape } },
        };
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower, allowIntegerValues: false));
        options.Converters.Add(new StringSetConverter());
        options.Converters.Add(new NMPatternConverter());
        options.Converters.Add(new RecipeStepConverter());
        options.MakeReadOnly(populateMissingResolver: false);
        return options;
    }

    /// <summary>A fresh instance of an options record with its defaults (members the runner fills in left unset).</summary>
    internal static T DefaultOf<T>() where T : class => (T)Activator.CreateInstance(typeof(T))!;

    private static object? DefaultInstance(Type type) =>
        type.IsAbstract || type.GetConstructor(Type.EmptyTypes) is null ? null : Defaults.GetOrAdd(type, t => Activator.CreateInstance(t)!);

    /// <summary>Drops computed and runner-filled members, and skips writing values equal to the record's defaults.</summary>
    private static void Shape(JsonTypeInfo info)
    {
        if (info.Kind != JsonTypeInfoKind.Object || info.Type.Namespace?.StartsWith("MLNetCompress", StringComparison.Ordinal) != true) return;
        RunnerFilled.TryGetValue(info.Type, out var filled);
        for (int i = info.Properties.Count - 1; i >= 0; i--)
        {
            var p = info.Properties[i];
            var member = p.AttributeProvider as MemberInfo;
            bool runnerFilled = filled is not null && member is not null && filled.Contains(member.Name);
            if (p.Set is null || runnerFilled || !IsRecipeData(p.PropertyType)) info.Properties.RemoveAt(i);
        }
        if (DefaultInstance(info.Type) is not { } defaults) return;
        foreach (var p in info.Properties)
        {
            if (p.Get is null) continue;
            var getter = p.Get;
            object? fallback = getter(defaults);
            p.ShouldSerialize = (_, value) => !SameValue(value, fallback);
        }
    }

    /// <summary>
    /// True for the member types a recipe holds: numbers, strings, enums, N:M patterns, sets of names, dictionaries of
    /// numbers by name, and nested options records (<c>*Options</c>). Anything else — data feeds, runtimes, callbacks,
    /// precomputed statistics — is the runner's business and is left out of the JSON (it keeps its default).
    /// </summary>
    private static bool IsRecipeData(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(decimal) || type == typeof(NMPattern)) return true;
        if (type == typeof(RuntimeOptions)) return false;
        if (type.IsGenericType)
        {
            var definition = type.GetGenericTypeDefinition();
            var args = type.GetGenericArguments();
            if (definition == typeof(IReadOnlySet<>)) return args[0] == typeof(string);
            if (definition == typeof(IReadOnlyDictionary<,>) || definition == typeof(IDictionary<,>) || definition == typeof(Dictionary<,>))
                return args[0] == typeof(string) && (args[1].IsPrimitive || args[1] == typeof(string));
            return false;
        }
        return type.IsClass && type.Name.EndsWith("Options", StringComparison.Ordinal) && type.Namespace?.StartsWith("MLNetCompress", StringComparison.Ordinal) == true;
    }

    private static bool SameValue(object? a, object? b)
    {
        if (Equals(a, b)) return true;
        if (a is null || b is null || a.GetType().IsValueType) return false;
        // Sets, dictionaries and nested records: equal when they write the same JSON (sets are written sorted).
        return JsonSerializer.Serialize(a, Options) == JsonSerializer.Serialize(b, Options);
    }

    /// <summary>Reads one step object; errors name the step index, the field and the fix.</summary>
    internal static RecipeStep ReadStep(JsonNode? node, int index)
    {
        if (node is not JsonObject obj)
            throw new RecipeException(index, null, $"a step is a JSON object such as {{\"step\":\"prepare\"}}, not {Describe(node)}");
        if (!obj.TryGetPropertyValue("step", out var nameNode) || nameNode is not JsonValue nameValue || !nameValue.TryGetValue(out string? name))
            throw new RecipeException(index, null, $"the step has no \"step\" field naming it; add \"step\": one of {string.Join(", ", RecipeSteps.Names)}");
        var stepType = RecipeSteps.TypeOf(name)
            ?? throw new RecipeException(index, name, $"unknown step \"{name}\"; use one of {string.Join(", ", RecipeSteps.Names)}");

        var ownFields = FieldNames(stepType);
        var prototype = (RecipeStep)Activator.CreateInstance(stepType)!;
        var optionsType = (prototype as IOptionsStep)?.OptionsType;
        var optionFields = optionsType is null ? [] : FieldNames(optionsType);
        var own = new JsonObject();
        var options = new JsonObject();
        foreach (var (key, value) in obj)
        {
            if (key == "step") continue;
            var target = ownFields.Contains(key) ? own : optionFields.Contains(key) ? options : null;
            if (target is null)
            {
                var fields = ownFields.Concat(optionFields).Order(StringComparer.Ordinal).ToList();
                throw new RecipeException(index, name, $"unknown field \"{key}\"; " +
                    (fields.Count == 0 ? "this step takes no fields: remove it" : $"fields of {name}: {string.Join(", ", fields)}"));
            }
            target[key] = value?.DeepClone();
        }
        try
        {
            var step = (RecipeStep)own.Deserialize(stepType, Options)!;
            if (step is IOptionsStep withOptions)
                step = withOptions.WithOptions(options.Deserialize(optionsType!, Options)!);
            return step;
        }
        catch (JsonException e)
        {
            string field = e.Path is { Length: > 2 } path ? path[2..] : "?";
            throw new RecipeException(index, name, $"field \"{field}\" has the wrong type or value ({FirstSentence(e.Message)}); fix it", e);
        }
        catch (ArgumentException e)
        {
            throw new RecipeException(index, name, $"{FirstSentence(e.Message)}; fix it", e);
        }
    }

    /// <summary>Writes one step: <c>"step"</c> first, then its own fields, then its options' fields.</summary>
    internal static JsonObject WriteStep(RecipeStep step)
    {
        var result = new JsonObject { ["step"] = step.Name };
        void Merge(JsonNode? node)
        {
            if (node is not JsonObject o) return;
            foreach (var (key, value) in o) result[key] = value?.DeepClone();
        }
        Merge(JsonSerializer.SerializeToNode(step, step.GetType(), Options));
        if (step is IOptionsStep withOptions) Merge(JsonSerializer.SerializeToNode(withOptions.Options, withOptions.OptionsType, Options));
        return result;
    }

    private static HashSet<string> FieldNames(Type type) =>
        Options.GetTypeInfo(type).Properties.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);

    internal static string Describe(JsonNode? node) => node is null ? "null" : node.GetValueKind().ToString().ToLowerInvariant();

    internal static string FirstSentence(string message)
    {
        var line = message.Split('\n')[0].Trim();
        int cut = line.IndexOf(". ", StringComparison.Ordinal);
        return (cut > 0 ? line[..cut] : line).TrimEnd('.');
    }

    /// <summary>Sets of names (<see cref="IReadOnlySet{T}"/> of string) as JSON arrays.</summary>
    private sealed class StringSetConverter : JsonConverter<IReadOnlySet<string>>
    {
        public override IReadOnlySet<string> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            var items = JsonSerializer.Deserialize<string[]>(ref reader, options) ?? throw new JsonException("expected an array of names, not null");
            return items.ToHashSet(StringComparer.Ordinal);
        }

        public override void Write(Utf8JsonWriter writer, IReadOnlySet<string> value, JsonSerializerOptions options) =>
            JsonSerializer.Serialize(writer, value.Order(StringComparer.Ordinal).ToArray(), options);
    }

    /// <summary>N:M patterns as <c>"2:4"</c>.</summary>
    private sealed class NMPatternConverter : JsonConverter<NMPattern>
    {
        public override NMPattern Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType != JsonTokenType.String) throw new JsonException("expected an N:M pattern such as \"2:4\"");
            try
            {
                return NMPattern.Parse(reader.GetString()!);
            }
            catch (FormatException e)
            {
                throw new JsonException(e.Message, e);
            }
        }

        public override void Write(Utf8JsonWriter writer, NMPattern value, JsonSerializerOptions options) =>
            writer.WriteStringValue(value.ToString());
    }

    /// <summary>Steps inside a recipe: the <c>"step"</c> field picks the record (see <see cref="RecipeSteps"/>).</summary>
    private sealed class RecipeStepConverter : JsonConverter<RecipeStep>
    {
        public override RecipeStep Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            ReadStep(JsonNode.Parse(ref reader), -1);

        public override void Write(Utf8JsonWriter writer, RecipeStep value, JsonSerializerOptions options) =>
            WriteStep(value).WriteTo(writer, options);
    }

    internal static string Invariant(double v) => v.ToString(CultureInfo.InvariantCulture);
}
