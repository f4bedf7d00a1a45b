using System.Collections.Concurrent;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace MaskFormer.Server.Hosting;

/// <summary>
/// Tells every client connected when the drain begins to open its next calls on a new connection: an
/// HTTP/2 GOAWAY on each connection open at SIGTERM (Kestrel's graceful close, as its own shutdown sends
/// later). Calls already running go on to their end. Without it a client's channel keeps the connection,
/// and so this pod, for every new call (a stream reopened after <c>draining</c>, a unary retry) until the
/// drain is over: behind a Kubernetes Service, or with round-robin over DNS, a new connection reaches a
/// pod that is not draining.
/// </summary>
/// <remarks>
/// A connection that has carried no request yet is asked only once its first request has started: a
/// GOAWAY before the client's first stream closes the connection under a call the client has already
/// begun, and .NET's client fails that call INTERNAL instead of trying it elsewhere. A connection opened
/// during the drain (its address still resolves here) is asked after its first call too: that call is
/// answered UNAVAILABLE, saying why, and the client's retry goes on a new connection, which resolves the
/// address again, instead of coming back here for the rest of the drain.
/// </remarks>
internal sealed partial class DrainingConnections(IHostApplicationLifetime lifetime, ILogger<DrainingConnections> logger) : IHostedService
{
    private readonly ConcurrentDictionary<string, OpenConnection> _open = new(StringComparer.Ordinal);
    private CancellationTokenRegistration _stopping;

    /// <summary>Connection middleware for every Kestrel endpoint: keeps the connection's close request while it is open.</summary>
    public ConnectionDelegate Track(ConnectionDelegate next) => async connection =>
    {
        if (connection.Features.Get<IConnectionLifetimeNotificationFeature>() is not { } closing)
        {
            await next(connection).ConfigureAwait(false);
            return;
        }

        var open = _open[connection.ConnectionId] = new OpenConnection(closing);
        if (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            // Opened during the drain (an address that still resolves here): closed after its first call.
            open.AskToClose();
        }

        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            _open.TryRemove(connection.ConnectionId, out _);
        }
    };

    /// <summary>Called as each request starts: a connection's first request makes it one the drain may close.</summary>
    public void RequestStarted(string connectionId)
    {
        if (_open.TryGetValue(connectionId, out var connection))
        {
            connection.RequestStarted();
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _stopping = lifetime.ApplicationStopping.Register(static state => ((DrainingConnections)state!).CloseAll(), this);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping.Dispose();
        return Task.CompletedTask;
    }

    private void CloseAll()
    {
        var (asked, waiting) = (0, 0);
        foreach (var (_, connection) in _open)
        {
            if (connection.AskToClose())
            {
                asked++;
            }
            else
            {
                waiting++;
            }
        }

        LogClosing(logger, asked, waiting);
    }

    [LoggerMessage(EventId = 323, Level = LogLevel.Information, Message = "Draining: asked {Count} open connection(s) to take new calls elsewhere (HTTP/2 GOAWAY); calls running on them go on; {Waiting} connected with no call yet will be asked once their first call has started")]
    private static partial void LogClosing(ILogger logger, int count, int waiting);

    /// <summary>
    /// One open connection. The drain's ask and the first request may race; each sets its own flag and
    /// then reads the other's, so at least one of them sees both and asks (asking twice is harmless).
    /// </summary>
    private sealed class OpenConnection(IConnectionLifetimeNotificationFeature closing)
    {
        private int _requestStarted;
        private int _closeWanted;

        public void RequestStarted()
        {
            if (Volatile.Read(ref _requestStarted) == 0 && Interlocked.Exchange(ref _requestStarted, 1) == 0 && Volatile.Read(ref _closeWanted) == 1)
            {
                closing.RequestClose();
            }
        }

        /// <summary>Asks the connection to close now, or once its first request has started; true when asked now.</summary>
        public bool AskToClose()
        {
            Interlocked.Exchange(ref _closeWanted, 1);
            if (Volatile.Read(ref _requestStarted) == 0)
            {
                return false;
            }

            closing.RequestClose();
            return true;
        }
    }
}
