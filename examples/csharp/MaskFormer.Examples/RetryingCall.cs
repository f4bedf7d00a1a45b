using Google.Rpc;
using Grpc.Core;

namespace MaskFormer.Examples;

/// <summary>
/// A unary call made again when the server says to, as the C# CLI and the other examples do:
/// RESOURCE_EXHAUSTED with google.rpc.RetryInfo (the server was overloaded: its queue full, admission
/// control, its call limit) after the delay it gives, at most <see cref="MaxAttempts"/> attempts in all;
/// any UNAVAILABLE the server sent (its models are still loading; it is draining) after its RetryInfo delay
/// when that is above 0, else a backoff of 0.25 s doubling to 4 s; and, once, after the backoff, a call whose
/// connection the server closed before the call started (a server shutting down closes a connection it has
/// just accepted: the server never saw the call). All within one deadline: the last status is thrown once
/// the next attempt would start past it. Any other UNAVAILABLE the client made itself (nothing listening, the
/// connection lost under the call) and every other status are thrown at once.
/// </summary>
internal static class RetryingCall
{
    public const int MaxAttempts = 5;

    public static async Task<TResponse> CallAsync<TResponse>(Func<DateTime, AsyncUnaryCall<TResponse>> call, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow.Add(timeout);
        var closedBefore = false;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var pending = call(deadline);
                return await pending.ResponseAsync;
            }
            catch (RpcException ex) when (Delay(ex, attempt, closedBefore) is { } delay && DateTime.UtcNow.Add(delay) < deadline)
            {
                closedBefore = IsConnectionClosedBeforeTheCall(ex.Status);
                await Task.Delay(delay, cancellationToken);
            }
        }
    }

    /// <summary>The wait after <paramref name="failures"/> failures in a row (from 0): 0.25 s doubling to 4 s.</summary>
    public static TimeSpan Backoff(int failures) => TimeSpan.FromMilliseconds(Math.Min(4000, 250 << Math.Min(failures, 4)));

    /// <summary>
    /// The google.rpc.RetryInfo delay in a failed call's grpc-status-details-bin trailer (Grpc.StatusProto
    /// decodes the google.rpc.Status there), or null when it has none.
    /// </summary>
    public static TimeSpan? RetryInfoDelay(Metadata trailers) =>
        trailers.GetRpcStatus(ignoreParseError: true)?.GetDetail<RetryInfo>()?.RetryDelay?.ToTimeSpan();

    /// <summary>
    /// Whether the server sent this status. .NET's client makes its own (no server listening, the connection
    /// lost) with the transport's exception as <see cref="Grpc.Core.Status.DebugException"/>; one the server sent has none.
    /// </summary>
    public static bool FromServer(RpcException exception) => exception.Status.DebugException is null;

    /// <summary>
    /// The status .NET's client gives a call whose connection the server closed under it before it started
    /// (the CLI's rule): its own <see cref="HttpRequestException"/> over an I/O error ("The HTTP/2 server
    /// closed the connection"), INTERNAL or UNAVAILABLE by when the close came; not a status the server sent,
    /// nor a connection refused (nothing listening: a socket error).
    /// </summary>
    public static bool IsConnectionClosedBeforeTheCall(Grpc.Core.Status status)
    {
        if (status.StatusCode is not (StatusCode.Internal or StatusCode.Unavailable) || status.DebugException is not HttpRequestException request)
        {
            return false;
        }

        // INTERNAL from the client's own HTTP request is never "nothing listening" (that is UNAVAILABLE).
        var closed = status.StatusCode == StatusCode.Internal;
        for (var inner = request.InnerException; inner is not null; inner = inner.InnerException)
        {
            if (inner is System.Net.Sockets.SocketException)
            {
                return false;
            }

            closed |= inner is IOException;
        }

        return closed;
    }

    // closedBefore: the previous attempt's connection was closed before the call too. A server shutting down
    // closes a connection it has just accepted once; one that closes every new connection is refusing this
    // client, which no wait changes: seen after one more try, not at the deadline.
    private static TimeSpan? Delay(RpcException exception, int attempt, bool closedBefore) => exception.StatusCode switch
    {
        StatusCode.ResourceExhausted when attempt < MaxAttempts && RetryInfoDelay(exception.Trailers) is { } delay && delay >= TimeSpan.Zero => delay,
        StatusCode.Unavailable when FromServer(exception) => RetryInfoDelay(exception.Trailers) is { } delay && delay > TimeSpan.Zero ? delay : Backoff(attempt - 1),
        StatusCode.Internal or StatusCode.Unavailable when !closedBefore && IsConnectionClosedBeforeTheCall(exception.Status) => Backoff(attempt - 1),
        _ => null,
    };
}
