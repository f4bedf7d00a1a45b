using Google.Rpc;
using Grpc.Core;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// A unary call made again when the server answers RESOURCE_EXHAUSTED with google.rpc.RetryInfo: it was
/// overloaded (a full queue, admission control, its call limit, its request-bytes budget) and says how
/// long to wait. At most <see cref="MaxAttempts"/> attempts, all within one deadline. Any other status is
/// the caller's to see at once: UNAVAILABLE with RetryInfo follows a model run that hung, which the same
/// image may do again.
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
                return await pending.ResponseAsync.ConfigureAwait(false);
            }
            catch (RpcException ex) when (attempt < MaxAttempts && ex.StatusCode == StatusCode.ResourceExhausted
                && RetryDelay(ex) is { } delay && delay >= TimeSpan.Zero && DateTime.UtcNow.Add(delay) < deadline)
            {
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static TimeSpan? RetryDelay(RpcException exception) =>
        exception.GetRpcStatus()?.GetDetail<RetryInfo>()?.RetryDelay is { } delay ? delay.ToTimeSpan() : null;
}
