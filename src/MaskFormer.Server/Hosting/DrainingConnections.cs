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
/// Connections opened during the drain are left open: their calls are answered UNAVAILABLE, and a client
/// that reaches this pod again after the GOAWAY (its address still resolves here) learns why.
/// </remarks>
internal sealed partial class DrainingConnections(IHostApplicationLifetime lifetime, ILogger<DrainingConnections> logger) : IHostedService
{
    private readonly ConcurrentDictionary<string, IConnectionLifetimeNotificationFeature> _open = new(StringComparer.Ordinal);
    private CancellationTokenRegistration _stopping;

    /// <summary>Connection middleware for every Kestrel endpoint: keeps the connection's close request while it is open.</summary>
    public ConnectionDelegate Track(ConnectionDelegate next) => async connection =>
    {
        if (connection.Features.Get<IConnectionLifetimeNotificationFeature>() is not { } closing || lifetime.ApplicationStopping.IsCancellationRequested)
        {
            await next(connection).ConfigureAwait(false);
            return;
        }

        _open[connection.ConnectionId] = closing;
        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            _open.TryRemove(connection.ConnectionId, out _);
        }
    };

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
        var count = 0;
        foreach (var (_, closing) in _open)
        {
            closing.RequestClose();
            count++;
        }

        LogClosing(logger, count);
    }

    [LoggerMessage(EventId = 310, Level = LogLevel.Information, Message = "Draining: asked {Count} open connection(s) to take new calls elsewhere (HTTP/2 GOAWAY); calls running on them go on")]
    private static partial void LogClosing(ILogger logger, int count);
}
