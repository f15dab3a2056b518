using System.CommandLine;
using System.Globalization;

namespace MLNetCompress.Cli.Commands;

/// <summary>Options that every model-writing command takes the same way.</summary>
internal static class CommonOptions
{
    /// <summary><c>--min-cosine C</c>: the verification gate before anything is written.</summary>
    /// <param name="probes">Which probes the gate uses, as the help text should say it.</param>
    /// <param name="defaultValue">The command's default.</param>
    public static Option<double> MinCosine(string probes, double defaultValue) => new("--min-cosine")
    {
        Description = $"The written model's outputs must have at least this cosine with the original's on {probes} " +
                      $"(default {defaultValue.ToString(CultureInfo.InvariantCulture)}).",
        DefaultValueFactory = _ => defaultValue,
        HelpName = "C",
    };

    /// <summary>Rejects a <c>--min-cosine</c> outside [-1, 1] as bad input.</summary>
    /// <exception cref="InputException">The value is not a cosine.</exception>
    public static void CheckMinCosine(double value)
    {
        if (!(value is >= -1 and <= 1))
            throw new InputException($"--min-cosine takes a value in [-1, 1], not {value.ToString(CultureInfo.InvariantCulture)}");
    }
}
