using System.Diagnostics;
using MaskFormer.Engine.Preprocessing;

namespace MaskFormer.Engine.Batching;

/// <summary>A queued request: its input, when it arrived, and where its answer goes.</summary>
internal sealed class BatchWorkItem(ModelInput input, long enqueuedTimestamp, DateTimeOffset? deadline)
{
    private const int Pending = 0;
    private const int Taken = 1;
    private const int Abandoned = 2;
    private int _state;

    public ModelInput Input { get; } = input;

    public (int Height, int Width) ShapeKey { get; } = (input.Plan.PaddedHeight, input.Plan.PaddedWidth);

    public long EnqueuedTimestamp { get; } = enqueuedTimestamp;

    public DateTimeOffset? Deadline { get; } = deadline;

    public TaskCompletionSource<BatchedOutput> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public CancellationTokenRegistration CancellationRegistration { get; set; }

    /// <summary>The span of the request that queued this item; the model run that serves it links to it.</summary>
    public ActivityContext TraceContext { get; init; }

    public bool IsPending => Volatile.Read(ref _state) == Pending;

    /// <summary>Claims the item for a batch; false when it was cancelled or expired first.</summary>
    public bool TryTake() => Interlocked.CompareExchange(ref _state, Taken, Pending) == Pending;

    /// <summary>Claims the item to fail it; false when a batch already took it.</summary>
    public bool TryAbandon() => Interlocked.CompareExchange(ref _state, Abandoned, Pending) == Pending;
}
