namespace MaskFormer.Server.Streaming;

/// <summary>
/// Counts the open SegmentStream calls and holds the host's shutdown until they have drained, before
/// Kestrel stops listening: while it waits, health says NOT_SERVING and new calls get UNAVAILABLE,
/// so load balancers move away while every stream finishes the frames it received.
/// </summary>
internal sealed partial class OpenStreams(IHostApplicationLifetime lifetime, ILogger<OpenStreams> logger) : IHostedLifecycleService
{
    // How long the drain waits after the last stream has ended before Kestrel closes connections.
    private static readonly TimeSpan s_linger = TimeSpan.FromMilliseconds(500);

    private readonly Lock _lock = new();
    private int _open;
    private TaskCompletionSource? _allClosed;

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _open;
            }
        }
    }

    /// <summary>Marks a stream open until the returned lease is disposed.</summary>
    public IDisposable Open()
    {
        lock (_lock)
        {
            _open++;
        }

        return new Lease(this);
    }

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        // The host may run this before it signals ApplicationStopping (a programmatic StopAsync); the
        // sessions drain on that signal, so make sure it has been given.
        lifetime.StopApplication();
        Task closed;
        lock (_lock)
        {
            if (_open == 0)
            {
                return;
            }

            _allClosed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            closed = _allClosed.Task;
            LogDraining(logger, _open);
        }

        try
        {
            await closed.WaitAsync(cancellationToken).ConfigureAwait(false);
            LogDrained(logger);
        }
        catch (OperationCanceledException)
        {
            LogDrainTimedOut(logger, Count);
            return;
        }

        try
        {
            // A client still sending when its call ended learns of the end from the RST_STREAM that
            // follows the trailers. Closing the connection before its last frames arrive would reset
            // the TCP connection and could cost the client the trailers it had not read yet (the
            // lingering-close problem), so give it a moment to stop sending.
            await Task.Delay(s_linger, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void Close()
    {
        lock (_lock)
        {
            if (--_open == 0)
            {
                _allClosed?.TrySetResult();
            }
        }
    }

    [LoggerMessage(EventId = 320, Level = LogLevel.Information, Message = "Draining: waiting for {Count} open stream(s) to finish")]
    private static partial void LogDraining(ILogger logger, int count);

    [LoggerMessage(EventId = 321, Level = LogLevel.Information, Message = "Drained: every stream has ended")]
    private static partial void LogDrained(ILogger logger);

    [LoggerMessage(EventId = 322, Level = LogLevel.Warning, Message = "Shutdown timeout reached with {Count} stream(s) still open; they are cut")]
    private static partial void LogDrainTimedOut(ILogger logger, int count);

    private sealed class Lease(OpenStreams owner) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Close();
            }
        }
    }
}
