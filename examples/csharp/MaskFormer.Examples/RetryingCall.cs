using Google.Rpc;
using Grpc.Core;

namespace MaskFormer.Examples;

/// <summary>
/// A unary call made again when the server says to, as the C# CLI and the other examples do:
/// RESOURCE_EXHAUSTED with google.rpc.RetryInfo (the server was overloaded: its queue full, admission
/// control, its call limit) after the delay it gives, at most <see cref="MaxAttempts"/> attempts in all;
/// any UNAVAILABLE the server sent (its models are still loading; it is draining) after its RetryInfo delay
/// when that is above 0, else a backoff of 0.25 s doubling to 4 s. All within one deadline: the last status
/// is thrown once the next attempt would start past it. An UNAVAILABLE the client made itself (the
/// connection failed or dropped) and every other status are thrown at once.
/// </summary>
internal static class RetryingCall
{
    public const int MaxAttempts = 5;

    public static async Task<TResponse> CallAsync<TResponse>(Func<DateTime, AsyncUnaryCall<TResponse>> call, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow.Add(timeout);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var pending = call(deadline);
                return await pending.ResponseAsync;
            }
            catch (RpcException ex) when (Delay(ex, attempt) is { } delay && DateTime.UtcNow.Add(delay) < deadline)
            {
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

    private static TimeSpan? Delay(RpcException exception, int attempt) => exception.StatusCode switch
    {
        StatusCode.ResourceExhausted when attempt < MaxAttempts && RetryInfoDelay(exception.Trailers) is { } delay && delay >= TimeSpan.Zero => delay,
        StatusCode.Unavailable when FromServer(exception) => RetryInfoDelay(exception.Trailers) is { } delay && delay > TimeSpan.Zero ? delay : Backoff(attempt - 1),
        _ => null,
    };
}
