using System.Text.Json.Serialization;
using MLNetCompress.Onnx.Passes;

namespace MLNetCompress.Recipes;

/// <summary>
/// One step of a <see cref="Recipe"/>: a typed record that maps onto one or more graph passes. In JSON a step is an
/// object whose <c>"step"</c> field names it (see <see cref="RecipeSteps"/>) and whose other fields are its options,
/// e.g. <c>{"step":"cluster","clusters":16}</c>. Adding a step is one record and one row in <see cref="RecipeSteps"/>.
/// </summary>
public abstract record RecipeStep
{
    /// <summary>The step's name in JSON, e.g. <c>cluster</c>.</summary>
    [JsonIgnore]
    public string Name => RecipeSteps.NameOf(GetType());

    /// <summary>The passes this step runs. Option errors surface as <see cref="ArgumentException"/> (naming the option
    /// in <see cref="ArgumentException.ParamName"/>) or <see cref="RecipeException"/>; the builder adds the step index.</summary>
    /// <param name="context">The model, the calibration data and the neighbouring steps.</param>
    public abstract IEnumerable<IGraphPass> Passes(RecipeBuildContext context);
}

/// <summary>
/// A step whose options are an existing options record (e.g. <see cref="Clustering.KMeansClusteringOptions"/>): in JSON
/// the record's fields sit beside <c>"step"</c>, so the step adds no fields of its own beyond those it declares itself.
/// Members the runner fills in (calibration data, runtime) are not part of the JSON.
/// </summary>
/// <typeparam name="TOptions">The options record.</typeparam>
public abstract record RecipeStep<TOptions> : RecipeStep, IOptionsStep where TOptions : class
{
    /// <summary>The options, as the pass takes them (members the runner fills in are unset here).</summary>
    [JsonIgnore]
    public TOptions Options { get; init; } = RecipeJson.DefaultOf<TOptions>();

    Type IOptionsStep.OptionsType => typeof(TOptions);

    object IOptionsStep.Options => Options;

    RecipeStep IOptionsStep.WithOptions(object options) => this with { Options = (TOptions)options };
}

/// <summary>What the JSON reader and writer need of a <see cref="RecipeStep{TOptions}"/> without knowing its type.</summary>
internal interface IOptionsStep
{
    Type OptionsType { get; }

    object Options { get; }

    RecipeStep WithOptions(object options);
}
