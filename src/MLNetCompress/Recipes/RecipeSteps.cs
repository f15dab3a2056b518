using MLNetCompress.Recipes.Steps;

namespace MLNetCompress.Recipes;

/// <summary>The table of step names: one row per step record. The JSON reader and writer use it both ways.</summary>
public static class RecipeSteps
{
    private static readonly (string Name, Type Type)[] Table =
    [
        ("prepare", typeof(PrepareStep)),
        ("quantize-static", typeof(QuantizeStaticStep)),
        ("quantize-dynamic", typeof(QuantizeDynamicStep)),
        ("matmul-nbits", typeof(MatMulNBitsStep)),
        ("prune", typeof(PruneStep)),
        ("reconstruct", typeof(ReconstructStep)),
        ("prune-structured", typeof(PruneStructuredStep)),
        ("cluster", typeof(ClusterStep)),
        ("lowrank", typeof(LowRankStep)),
        ("sparse-storage", typeof(SparseStorageStep)),
        ("int8-storage", typeof(Int8StorageStep)),
        ("weight-storage", typeof(WeightStorageStep)),
    ];

    private static readonly Dictionary<string, Type> ByName = Table.ToDictionary(r => r.Name, r => r.Type, StringComparer.Ordinal);
    private static readonly Dictionary<Type, string> ByType = Table.ToDictionary(r => r.Type, r => r.Name);

    /// <summary>Every step name, in the table's order.</summary>
    public static IReadOnlyList<string> Names { get; } = Table.Select(r => r.Name).ToArray();

    /// <summary>The record type of a step name, or null when there is no such step.</summary>
    public static Type? TypeOf(string name) => ByName.GetValueOrDefault(name);

    /// <summary>The JSON name of a step record type.</summary>
    /// <exception cref="InvalidOperationException">The type is not in the table.</exception>
    public static string NameOf(Type stepType) =>
        ByType.TryGetValue(stepType, out var name) ? name : throw new InvalidOperationException($"{stepType.Name} is not registered in RecipeSteps.");
}
