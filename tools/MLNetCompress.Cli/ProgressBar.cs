using Spectre.Console;

namespace MLNetCompress.Cli;

/// <summary>
/// One progress bar fed by the engine's <c>IProgress&lt;T&gt;</c> reports. Without a terminal (or with --quiet) it
/// is <see cref="None"/> and drops the reports, so commands call it the same way in both cases.
/// </summary>
internal sealed class ProgressBar
{
    private readonly ProgressTask? task;

    private ProgressBar(ProgressTask? task) => this.task = task;

    /// <summary>A bar that shows nothing.</summary>
    public static ProgressBar None { get; } = new(null);

    /// <summary>Sets the bar: what is happening, how far, out of how much (null: unknown, the bar pulses).</summary>
    public void Update(string description, double value, double? max)
    {
        if (task is null) return;
        task.Description = Markup.Escape(description);
        task.IsIndeterminate = max is null or <= 0;
        if (max is double m && m > 0)
        {
            task.MaxValue = m;
            task.Value = Math.Min(value, m);
        }
    }

    /// <summary>An <see cref="IProgress{T}"/> that maps each report onto this bar on the reporting thread
    /// (System.Progress would post to the thread pool and could update the bar out of order).</summary>
    public IProgress<T> Reporter<T>(Action<ProgressBar, T> apply) => new Sink<T>(this, apply);

    private sealed class Sink<T>(ProgressBar bar, Action<ProgressBar, T> apply) : IProgress<T>
    {
        public void Report(T value) => apply(bar, value);
    }

    /// <summary>Runs <paramref name="work"/> on the thread pool with a bar drawn on the console while it runs.</summary>
    public static async Task<T> RunAsync<T>(CliContext ctx, string description, Func<ProgressBar, T> work, CancellationToken cancellationToken)
    {
        if (!ctx.ShowProgress) return await Task.Run(() => work(None), cancellationToken).ConfigureAwait(false);
        return await ctx.Console.Progress()
            .AutoClear(true)
            .HideCompleted(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async p =>
            {
                var task = p.AddTask(Markup.Escape(description), autoStart: true, maxValue: 1);
                task.IsIndeterminate = true;
                try
                {
                    return await Task.Run(() => work(new ProgressBar(task)), cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    task.StopTask();
                }
            }).ConfigureAwait(false);
    }
}
