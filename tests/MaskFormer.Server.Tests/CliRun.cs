namespace MaskFormer.Server.Tests;

/// <summary>
/// A CLI command run in this process while the test goes on, writing to writers of its own. Disposing it
/// cancels the command and waits for its end before the writers go: a test whose check fails while the
/// command runs would otherwise dispose a writer the command still writes to, and the stream command's
/// progress display writes from a thread of its own (Spectre.Console's refresh thread), whose
/// ObjectDisposedException crashes the test host; a crashed host leaves its ServerProcess servers running.
/// Every test that starts a command and awaits it later holds it in one of these (`await using`); one that
/// awaits it at once needs none.
/// </summary>
internal sealed class CliRun : IAsyncDisposable
{
    // Cancelled, a command ends within seconds; one that does not keeps its writers (they hold nothing to
    // free), so that the test still fails by its own check rather than the host by a write.
    private static readonly TimeSpan s_endAfterCancel = TimeSpan.FromSeconds(60);

    private readonly CancellationTokenSource _cancel;

    private CliRun(Func<TextWriter, TextWriter, CancellationToken, Task<int>> command, CancellationToken cancellationToken)
    {
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Exit = command(Output, Error, _cancel.Token);
    }

    /// <summary>What the command writes to its output (its log, for the stream command).</summary>
    public StringWriter Output { get; } = new();

    public StringWriter Error { get; } = new();

    /// <summary>The command's exit code, or its exception.</summary>
    public Task<int> Exit { get; }

    /// <summary>
    /// Starts <paramref name="command"/> with the run's writers and a token cancelled by
    /// <paramref name="cancellationToken"/>, <see cref="CancelAsync"/> or the run's disposal.
    /// </summary>
    public static CliRun Start(Func<TextWriter, TextWriter, CancellationToken, Task<int>> command, CancellationToken cancellationToken = default) =>
        new(command, cancellationToken);

    /// <summary>Cancels the command, as Ctrl+C does.</summary>
    public Task CancelAsync() => _cancel.CancelAsync();

    public async ValueTask DisposeAsync()
    {
        await _cancel.CancelAsync();
        if (await Task.WhenAny(Exit, Task.Delay(s_endAfterCancel)) != Exit)
        {
            return;
        }

        // Observed here: a test that failed before awaiting it has said why already.
        _ = Exit.Exception;
        _cancel.Dispose();
        Output.Dispose();
        Error.Dispose();
    }
}
