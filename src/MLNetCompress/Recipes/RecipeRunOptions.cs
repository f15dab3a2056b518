using MLNetCompress.Compression;
using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Runtime;

namespace MLNetCompress.Recipes;

/// <summary>Where <see cref="RecipeRunner"/> writes, which data it calibrates and verifies on, and where it runs.</summary>
public sealed record RecipeRunOptions
{
    /// <summary>The file to write (atomically, after verification).</summary>
    public required string OutputPath { get; init; }

    /// <summary>Calibration data built against the model's inputs; required when a step needs it
    /// (<see cref="Recipe.NeedsCalibration"/>). Also the verification probes unless <see cref="Probes"/> is set.</summary>
    public IDataFeed? Calibration { get; init; }

    /// <summary>Verification probes; null to use <see cref="Calibration"/>, or random probes when there is none.</summary>
    public IDataFeed? Probes { get; init; }

    /// <summary>Overrides the recipe's <see cref="Recipe.MinCosine"/> gate; null keeps the recipe's (or 0.99).</summary>
    public double? MinCosine { get; init; }

    /// <summary>Probe rows compared by the verifier (at most; default 8).</summary>
    public int ProbeRows { get; init; } = 8;

    /// <summary>Where calibration and verification sessions run (CPU by default, or a CUDA device).</summary>
    public RuntimeOptions Runtime { get; init; } = RuntimeOptions.Default;

    /// <summary>Replace an existing output file.</summary>
    public bool Overwrite { get; init; } = true;

    /// <summary>Receives one-line notes from the passes and the recipe (opset upgrades, merged steps).</summary>
    public Action<string>? Log { get; init; }

    /// <summary>The <see cref="CompressionOptions"/> the run hands to <see cref="ModelCompressor"/>.</summary>
    internal CompressionOptions ToCompressionOptions(Recipe recipe) => new()
    {
        OutputPath = OutputPath,
        Probes = Probes ?? Calibration,
        Overwrite = Overwrite,
        Log = Log,
        Verification = new VerifyOptions
        {
            MinCosine = MinCosine ?? recipe.MinCosine ?? new VerifyOptions().MinCosine,
            ProbeRows = ProbeRows,
            BatchSize = Math.Min(ProbeRows, 8),
            Runtime = Runtime,
            Log = Log,
        },
    };
}
