namespace MLNetCompress.Recipes;

/// <summary>A recipe that cannot be read or run as written: the message is one line naming the step (by its index in
/// <c>steps</c>), the field and the fix.</summary>
public sealed class RecipeException : Exception
{
    /// <summary>Creates the exception with a one-line message.</summary>
    public RecipeException(string message, Exception? inner = null) : base(message, inner) { }

    /// <summary>Creates the exception for one step.</summary>
    /// <param name="index">The step's index in <c>steps</c> (0-based, as a JSON path counts).</param>
    /// <param name="step">The step's name, or null when it has none.</param>
    /// <param name="problem">What is wrong and how to fix it.</param>
    /// <param name="inner">The error behind it.</param>
    public RecipeException(int index, string? step, string problem, Exception? inner = null)
        : base($"recipe steps[{index}]{(step is null ? "" : $" (\"{step}\")")}: {problem}", inner)
    {
        StepIndex = index;
        Step = step;
    }

    /// <summary>The index of the step at fault in <c>steps</c>, or null when the recipe as a whole is at fault.</summary>
    public int? StepIndex { get; }

    /// <summary>The name of the step at fault, when known.</summary>
    public string? Step { get; }
}
