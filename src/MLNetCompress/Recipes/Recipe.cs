using System.Text.Json;
using System.Text.Json.Nodes;
using MLNetCompress.Data;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Runtime;

namespace MLNetCompress.Recipes;

/// <summary>
/// A compression plan: an ordered list of typed steps that both <c>mlnet-compress compress --recipe FILE</c> and the
/// ML.NET <c>Compress</c> estimator run. JSON form:
/// <code>
/// { "name": "int8-speed", "description": "...", "minCosine": 0.99,
///   "steps": [ { "step": "quantize-static", "perChannel": true } ] }
/// </code>
/// </summary>
public sealed record Recipe
{
    /// <summary>A short name, e.g. <c>int8-speed</c>.</summary>
    public string? Name { get; init; }

    /// <summary>What the recipe is for and which models it suits.</summary>
    public string? Description { get; init; }

    /// <summary>The verification gate: every output's lowest per-row cosine with the original; null for the default (0.99).</summary>
    public double? MinCosine { get; init; }

    /// <summary>The steps, run in order.</summary>
    public IReadOnlyList<RecipeStep> Steps { get; init; } = [];

    /// <summary>True when a step needs calibration data (static quantization, reconstruction, data-aware low rank).</summary>
    public bool NeedsCalibration
    {
        get
        {
            var context = Build(13, PlaceholderFeed.Instance, RuntimeOptions.Default, new List<string>(), validationOnly: true, out _);
            return context.CalibrationRequested;
        }
    }

    /// <summary>Reads a recipe from JSON and checks every step's values.</summary>
    /// <exception cref="RecipeException">The JSON is malformed, a step is unknown, or a field is unknown or out of range.</exception>
    public static Recipe Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new RecipeException($"the recipe is not valid JSON ({RecipeJson.FirstSentence(e.Message)}); fix the syntax at that spot", e);
        }
        if (root is not JsonObject obj)
            throw new RecipeException("a recipe is a JSON object with a \"steps\" array, e.g. {\"steps\":[{\"step\":\"int8-storage\"}]}");
        var known = new[] { "name", "description", "minCosine", "steps" };
        foreach (var (key, _) in obj)
            if (!known.Contains(key, StringComparer.Ordinal))
                throw new RecipeException($"unknown recipe field \"{key}\"; a recipe has {string.Join(", ", known)}");
        if (!obj.TryGetPropertyValue("steps", out var stepsNode) || stepsNode is not JsonArray array || array.Count == 0)
            throw new RecipeException("the recipe has no steps; add \"steps\": [ {\"step\": ...}, ... ] with at least one step");

        var steps = new List<RecipeStep>(array.Count);
        for (int i = 0; i < array.Count; i++) steps.Add(RecipeJson.ReadStep(array[i], i));
        string? Text(string key)
        {
            var node = obj[key];
            if (node is null) return null;
            return node is JsonValue v && v.TryGetValue(out string? s) ? s : throw new RecipeException($"recipe field \"{key}\" must be a string");
        }
        double? minCosine = null;
        if (obj["minCosine"] is { } mc)
        {
            if (mc is not JsonValue v || !v.TryGetValue(out double d) || !(d is >= -1 and <= 1))
                throw new RecipeException($"recipe field \"minCosine\" must be a number in [-1, 1], not {mc.ToJsonString()}; fix it");
            minCosine = d;
        }
        var recipe = new Recipe { Name = Text("name"), Description = Text("description"), MinCosine = minCosine, Steps = steps };
        recipe.Validate();
        return recipe;
    }

    /// <summary>Reads a recipe file.</summary>
    /// <exception cref="RecipeException">The file is missing or the recipe is not valid (one line, naming the step and field).</exception>
    public static Recipe Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new RecipeException($"recipe file '{path}' does not exist; check the path (shipped recipes are in onnx-samples/recipes)");
        try
        {
            return Parse(File.ReadAllText(path));
        }
        catch (RecipeException e)
        {
            throw new RecipeException($"{Path.GetFileName(path)}: {e.Message}", e);
        }
    }

    /// <summary>The recipe as indented JSON; <see cref="Parse"/> reads it back to an equivalent recipe.</summary>
    public string ToJson()
    {
        var obj = new JsonObject();
        if (Name is not null) obj["name"] = Name;
        if (Description is not null) obj["description"] = Description;
        if (MinCosine is double c) obj["minCosine"] = c;
        var steps = new JsonArray();
        foreach (var step in Steps) steps.Add(RecipeJson.WriteStep(step));
        obj["steps"] = steps;
        return obj.ToJsonString(RecipeJson.Options);
    }

    /// <summary>Checks every step's values by building its passes against placeholder data (nothing runs).</summary>
    /// <exception cref="RecipeException">A step's values are out of range or inconsistent.</exception>
    public void Validate()
    {
        if (Steps.Count == 0) throw new RecipeException("the recipe has no steps; add at least one");
        Build(13, PlaceholderFeed.Instance, RuntimeOptions.Default, new List<string>(), validationOnly: true, out _);
    }

    /// <summary>The passes for a model of ai.onnx opset <paramref name="modelOpset"/>, in order.</summary>
    /// <param name="modelOpset">The model's ai.onnx opset (steps upgrade it when they need a newer one).</param>
    /// <param name="calibration">Calibration data built against the model's inputs, or null when no step needs it.</param>
    /// <param name="runtime">Where calibration runs; null for the CPU.</param>
    /// <param name="notes">Receives one line per decision worth reporting; may be null.</param>
    /// <exception cref="RecipeException">A step's values are bad or it needs calibration data that was not given.</exception>
    public IReadOnlyList<IGraphPass> Passes(long modelOpset, IDataFeed? calibration = null, RuntimeOptions? runtime = null, ICollection<string>? notes = null)
    {
        Build(modelOpset, calibration, runtime ?? RuntimeOptions.Default, notes ?? new List<string>(), validationOnly: false, out var passes);
        return passes;
    }

    private RecipeBuildContext Build(long modelOpset, IDataFeed? calibration, RuntimeOptions runtime, ICollection<string> notes, bool validationOnly,
        out List<IGraphPass> passes)
    {
        var context = BuildSteps(modelOpset, calibration, runtime, notes, validationOnly, out var groups);
        passes = groups.SelectMany(g => g.Passes).ToList();
        return context;
    }

    /// <summary>The passes of each step, in order (a step merged into the next, such as prune into reconstruct, has none).</summary>
    /// <exception cref="RecipeException">A step's values are bad or it needs calibration data that was not given.</exception>
    internal IReadOnlyList<(int Index, RecipeStep Step, List<IGraphPass> Passes)> PassesByStep(long modelOpset, IDataFeed? calibration,
        RuntimeOptions? runtime, ICollection<string>? notes)
    {
        BuildSteps(modelOpset, calibration, runtime ?? RuntimeOptions.Default, notes ?? new List<string>(), validationOnly: false, out var groups);
        return groups;
    }

    private RecipeBuildContext BuildSteps(long modelOpset, IDataFeed? calibration, RuntimeOptions runtime, ICollection<string> notes, bool validationOnly,
        out List<(int Index, RecipeStep Step, List<IGraphPass> Passes)> groups)
    {
        var context = new RecipeBuildContext(Steps, modelOpset, calibration, runtime, notes, validationOnly);
        groups = new List<(int, RecipeStep, List<IGraphPass>)>(Steps.Count);
        for (int i = 0; i < Steps.Count; i++)
        {
            context.Index = i;
            var step = Steps[i] ?? throw new RecipeException(i, null, "the step is null; remove it");
            try
            {
                groups.Add((i, step, step.Passes(context).ToList()));
            }
            catch (ArgumentException e)
            {
                string field = e.ParamName is { Length: > 0 } p ? $" (field \"{char.ToLowerInvariant(p[0])}{p[1..]}\")" : "";
                throw new RecipeException(i, step.Name, $"{RecipeJson.FirstSentence(e.Message)}{field}; fix that value in this step", e);
            }
        }
        return context;
    }

    /// <summary>Stands in for calibration data while a recipe is only checked; never read.</summary>
    private sealed class PlaceholderFeed : IDataFeed
    {
        public static PlaceholderFeed Instance { get; } = new();

        public string Description => "(placeholder: the recipe is only being checked)";

        public long? Count => null;

        public bool HasLabels => false;

        public IReadOnlyList<ModelInputInfo> Inputs => [];

        public IEnumerable<DataBatch> Batches(int batchSize, int? maxRows = null) =>
            throw new InvalidOperationException("a recipe being checked has no calibration data");
    }
}
