namespace MLNetCompress.Onnx.Passes;

/// <summary>What a pass did: whether it changed the model, a line per change, and what it skipped and why.</summary>
public sealed record PassResult(string PassName, bool Modified, IReadOnlyList<string> Changes, IReadOnlyList<string> Skipped)
{
    /// <summary>A result for a pass that changed nothing.</summary>
    public static PassResult Unchanged(string passName, IReadOnlyList<string>? skipped = null) =>
        new(passName, false, [], skipped ?? []);
}

/// <summary>Progress of a long pass: which pass, which step, how far.</summary>
public sealed record PassProgress(string PassName, string Step, int Done, int Total);

/// <summary>What every pass is given besides the graph: progress, a log and cancellation.</summary>
public sealed class PassContext
{
    /// <summary>Receives progress; may be null.</summary>
    public IProgress<PassProgress>? Progress { get; init; }

    /// <summary>Receives one-line notes (what was skipped and why); may be null.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Stops long passes.</summary>
    public CancellationToken Cancellation { get; init; }

    /// <summary>Reports progress if anyone listens.</summary>
    public void Report(string pass, string step, int done, int total) =>
        Progress?.Report(new PassProgress(pass, step, done, total));
}

/// <summary>A graph rewrite. Runs on a <see cref="ModelGraph"/>; the <see cref="PassManager"/> checks the invariants after it.</summary>
public interface IGraphPass
{
    /// <summary>Short name, used in reports and in the error when the pass breaks the graph.</summary>
    string Name { get; }

    /// <summary>Rewrites the graph and says what changed.</summary>
    PassResult Run(ModelGraph graph, PassContext context);
}

/// <summary>
/// A pass in two steps, the way ONNX Runtime's quantizer works: <see cref="Plan"/> decides what to do
/// (which tensors, which scheme) without touching the graph; <see cref="Rewrite"/> applies the plan.
/// </summary>
/// <typeparam name="TPlan">What the planning step decided.</typeparam>
public abstract class GraphPass<TPlan> : IGraphPass
{
    /// <inheritdoc />
    public abstract string Name { get; }

    /// <summary>Decides what to change; must not modify the graph.</summary>
    protected abstract TPlan Plan(ModelGraph graph, PassContext context);

    /// <summary>Applies the plan.</summary>
    protected abstract PassResult Rewrite(ModelGraph graph, TPlan plan, PassContext context);

    /// <inheritdoc />
    public PassResult Run(ModelGraph graph, PassContext context) => Rewrite(graph, Plan(graph, context), context);

    /// <summary>What the pass would do to <paramref name="graph"/>, without changing it.</summary>
    public TPlan Preview(ModelGraph graph, PassContext? context = null)
    {
        ArgumentNullException.ThrowIfNull(graph);
        return Plan(graph, context ?? new PassContext());
    }
}

/// <summary>A pass left the graph broken; the message names the pass and the broken invariant.</summary>
public sealed class PassFailedException(string passName, string problem)
    : Exception($"pass '{passName}' produced an invalid graph: {problem}.")
{
    /// <summary>The pass that failed.</summary>
    public string PassName { get; } = passName;
}

/// <summary>Runs passes in order and checks the graph's invariants after each one.</summary>
public static class PassManager
{
    /// <summary>Runs the passes; throws <see cref="PassFailedException"/> naming the first pass that breaks the graph.</summary>
    public static IReadOnlyList<PassResult> Run(ModelGraph graph, IEnumerable<IGraphPass> passes, PassContext? context = null)
    {
        context ??= new PassContext();
        var signature = graph.Signature;
        var results = new List<PassResult>();
        foreach (var pass in passes)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            var result = pass.Run(graph, context);
            var problem = GraphInvariants.FindViolation(graph, signature);
            if (problem is not null) throw new PassFailedException(pass.Name, problem);
            results.Add(result);
        }
        return results;
    }
}
