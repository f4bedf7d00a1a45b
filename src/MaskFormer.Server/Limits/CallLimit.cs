using MaskFormer.Server.Hosting;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Limits;

/// <summary>
/// The SegmentationService calls and streams running at once over all connections, at most
/// <see cref="GrpcServerOptions.MaxConcurrentCalls"/>; <see cref="CallLimitMiddleware"/> takes a slot
/// when a call starts and gives it back when the call ends.
/// </summary>
internal sealed class CallLimit(IOptions<GrpcServerOptions> options)
{
    private int _running;
    private long _refused;

    public int Capacity { get; } = options.Value.MaxConcurrentCalls;

    /// <summary>Calls holding a slot now.</summary>
    public int Running => Volatile.Read(ref _running);

    /// <summary>Calls turned away at the limit since start.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Takes a slot if one is free; a caller that gets one gives it back with <see cref="Exit"/>, once.</summary>
    public bool TryEnter()
    {
        if (Interlocked.Increment(ref _running) <= Capacity)
        {
            return true;
        }

        Interlocked.Decrement(ref _running);
        Interlocked.Increment(ref _refused);
        return false;
    }

    public void Exit() => Interlocked.Decrement(ref _running);
}
