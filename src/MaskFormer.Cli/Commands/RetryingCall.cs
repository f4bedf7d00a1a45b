using Google.Rpc;
using Grpc.Core;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// A unary call made again when the server says to: RESOURCE_EXHAUSTED with google.rpc.RetryInfo (it was
/// overloaded: a full queue, admission control, its call limit, its request-bytes budget) after the delay it
/// gives, at most <see cref="MaxAttempts"/> attempts; and any UNAVAILABLE the server sent (its models are
/// still loading; it is draining, when a new call after the drain's GOAWAY goes on a new connection, which a
/// Service sends to another pod; a hung model run's session is being replaced) after its RetryInfo delay, or
/// a backoff from 0.25 s doubling to 4 s. All within one deadline, which bounds the attempts. An
/// UNAVAILABLE the transport made (no server at the address) is not the server's word: seen at once.
/// </summary>
internal static class RetryingCall
{
    public const int MaxAttempts = 5;

    private static readonly TimeSpan s_firstBackoff = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan s_longestBackoff = TimeSpan.FromSeconds(4);

    public static async Task<TResponse> CallAsync<TResponse>(Func<DateTime, AsyncUnaryCall<TResponse>> call, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow.Add(timeout);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var pending = call(deadline);
                return await pending.ResponseAsync.ConfigureAwait(false);
            }
            catch (RpcException ex) when (Delay(ex, attempt) is { } delay && DateTime.UtcNow.Add(delay) < deadline)
            {
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static TimeSpan? Delay(RpcException exception, int attempt) => exception.StatusCode switch
    {
        StatusCode.ResourceExhausted when attempt < MaxAttempts && RetryDelay(exception) is { } delay && delay >= TimeSpan.Zero => delay,
        StatusCode.Unavailable when exception.Status.DebugException is null =>
            RetryDelay(exception) is { } delay && delay > TimeSpan.Zero ? delay : Backoff(attempt - 1),
        _ => null,
    };

    /// <summary>The wait after <paramref name="failures"/> failures in a row (from 0): 0.25 s doubling to 4 s.</summary>
    internal static TimeSpan Backoff(int failures) =>
        TimeSpan.FromTicks(Math.Min(s_longestBackoff.Ticks, s_firstBackoff.Ticks << Math.Min(failures, 8)));

    private static TimeSpan? RetryDelay(RpcException exception) =>
        exception.GetRpcStatus()?.GetDetail<RetryInfo>()?.RetryDelay is { } delay ? delay.ToTimeSpan() : null;
}
