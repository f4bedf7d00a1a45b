using Google.Rpc;
using Grpc.Core;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// A unary call made again when the server says to: RESOURCE_EXHAUSTED with google.rpc.RetryInfo (it was
/// overloaded: a full queue, admission control, its call limit, its request-bytes budget) after the delay it
/// gives, at most <see cref="MaxAttempts"/> attempts; and any UNAVAILABLE the server sent (its models are
/// still loading; it is draining, when a new call after the drain's GOAWAY goes on a new connection, which a
/// Service sends to another pod; a hung model run's session is being replaced) after its RetryInfo delay, or
/// a backoff from 0.25 s doubling to 4 s; and, once, after the backoff, a call whose connection the server closed
/// before the call started (.NET's client says INTERNAL or UNAVAILABLE itself). All within one deadline, which bounds the
/// attempts. An UNAVAILABLE the transport made (no server at the address) is not the server's word: seen at once.
/// </summary>
internal static class RetryingCall
{
    public const int MaxAttempts = 5;

    private static readonly TimeSpan s_firstBackoff = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan s_longestBackoff = TimeSpan.FromSeconds(4);

    public static async Task<TResponse> CallAsync<TResponse>(Func<DateTime, AsyncUnaryCall<TResponse>> call, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow.Add(timeout);
        var closedBefore = false;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var pending = call(deadline);
                return await pending.ResponseAsync.ConfigureAwait(false);
            }
            catch (RpcException ex) when (Delay(ex, attempt, closedBefore) is { } delay && DateTime.UtcNow.Add(delay) < deadline)
            {
                closedBefore = IsConnectionClosedBeforeTheCall(ex.Status);
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    // closedBefore: the previous attempt's connection was closed before the call too. A server shutting down
    // closes a connection it has just accepted once; one that closes every new connection before the first
    // call is refusing this client (a TLS server that wants a client certificate ends the handshake so), which
    // no wait changes: seen after one more try, not at the deadline.
    private static TimeSpan? Delay(RpcException exception, int attempt, bool closedBefore) => exception.StatusCode switch
    {
        StatusCode.ResourceExhausted when attempt < MaxAttempts && RetryDelay(exception) is { } delay && delay >= TimeSpan.Zero => delay,
        StatusCode.Unavailable when exception.Status.DebugException is null =>
            RetryDelay(exception) is { } delay && delay > TimeSpan.Zero ? delay : Backoff(attempt - 1),

        // .NET's client fails a call whose new connection was closed under it before the call started
        // (a server shutting down closes connections it has just accepted) INTERNAL with its own
        // HttpRequestException: the server never saw the call.
        StatusCode.Internal or StatusCode.Unavailable when !closedBefore && IsConnectionClosedBeforeTheCall(exception.Status) => Backoff(attempt - 1),
        _ => null,
    };

    /// <summary>
    /// The status .NET's client gives a call whose connection the server closed under it without an error
    /// (a GOAWAY with NO_ERROR, then the close): INTERNAL over an <see cref="HttpProtocolException"/> with
    /// error code 0. A server whose drain ran out does that to a client still sending, when the trailers
    /// with its own UNAVAILABLE are lost in the close.
    /// </summary>
    internal static bool IsConnectionClosedByTheServer(Grpc.Core.Status status) =>
        status.StatusCode is StatusCode.Internal or StatusCode.Unavailable
        && ExceptionChain.Any(status.DebugException, e => e is HttpProtocolException { ErrorCode: 0 });

    /// <summary>
    /// The status .NET's client gives a call whose connection the server closed under it before it started:
    /// its own <see cref="HttpRequestException"/> over an I/O error ("The HTTP/2 server closed the connection",
    /// "the server did not complete the HTTP/2 handshake"; or a write that met the close: a broken pipe or a
    /// reset), INTERNAL or UNAVAILABLE by when the close came; not a status the server sent, nor a connection
    /// refused or a host not reached (nothing listening: a socket error of another kind).
    /// </summary>
    internal static bool IsConnectionClosedBeforeTheCall(Grpc.Core.Status status)
    {
        if (status.StatusCode is not (StatusCode.Internal or StatusCode.Unavailable) || status.DebugException is not HttpRequestException request)
        {
            return false;
        }

        // INTERNAL from the client's own HTTP request is never "nothing listening" (that is UNAVAILABLE).
        var closed = status.StatusCode == StatusCode.Internal;
        for (Exception? inner = request.InnerException; inner is not null; inner = inner.InnerException)
        {
            if (inner is System.Net.Sockets.SocketException socket)
            {
                // The client's request written as the server closed the connection: the pipe is broken
                // (EPIPE, which .NET names Shutdown) or the connection reset. Seen in CI, once in a run.
                return socket.SocketErrorCode is System.Net.Sockets.SocketError.Shutdown
                    or System.Net.Sockets.SocketError.ConnectionReset or System.Net.Sockets.SocketError.ConnectionAborted;
            }

            closed |= inner is IOException;
        }

        return closed;
    }

    /// <summary>The wait after <paramref name="failures"/> failures in a row (from 0): 0.25 s doubling to 4 s.</summary>
    internal static TimeSpan Backoff(int failures) =>
        TimeSpan.FromTicks(Math.Min(s_longestBackoff.Ticks, s_firstBackoff.Ticks << Math.Min(failures, 8)));

    private static TimeSpan? RetryDelay(RpcException exception) =>
        exception.GetRpcStatus()?.GetDetail<RetryInfo>()?.RetryDelay is { } delay ? delay.ToTimeSpan() : null;
}
