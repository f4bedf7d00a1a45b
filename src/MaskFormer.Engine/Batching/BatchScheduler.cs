using System.Diagnostics;
using MaskFormer.Engine.Diagnostics;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Engine.Batching;

/// <summary>
/// Dynamic batching in Triton's sense for one model: requests with the same input shape are gathered
/// up to <see cref="InferenceOptions.MaxBatchSize"/> for at most <see cref="InferenceOptions.MaxQueueDelay"/>
/// after the oldest arrived, and a batch is formed only when a session is free (each session's thread
/// takes its next batch itself), so batches grow under load. The queue is bounded: a full queue turns callers away at once. Requests whose deadline passes
/// or whose caller cancels leave the queue without running. The session workers, and what happens when a
/// run fails or hangs, are in BatchScheduler.Workers.cs.
/// </summary>
internal sealed partial class BatchScheduler : IAsyncDisposable
{
    private static readonly TimeSpan s_longestWait = TimeSpan.FromMilliseconds(int.MaxValue - 1);

    private readonly InferenceOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    // Guards _pending and _stopping; workers wait on it for arrivals (Monitor.Wait / Pulse).
    private readonly object _gate = new();
    private readonly List<BatchWorkItem> _pending = [];
    private readonly long[] _batchSizeCounts;
    private bool _stopping;
    private bool _skipsQueueDelay;
    private int _queued;
    private int _inFlight;
    private long _completed;
    private long _rejected;
    private long _expired;
    private long _cancelled;
    private long _batchCount;
    private long _waitedForRoom;

    // Callers that wait for room in a full queue rather than being turned away (QUEUE-policy stream frames).
    private readonly SemaphoreSlim _room = new(0);
    private int _roomWaiters;

    // replace creates the session of a slot again, when the one there hung.
    public BatchScheduler(IModelSession[] sessions, Func<int, IModelSession> replace, InferenceOptions options, TimeProvider time, ILogger logger)
    {
        _sessions = [.. sessions];
        _replace = replace;
        _options = options;
        _time = time;
        _logger = logger;
        _batchSizeCounts = new long[options.MaxBatchSize];
        Telemetry = new ModelTelemetry(string.Empty, string.Empty, options.MaxBatchSize);
    }

    /// <summary>Zeroed inputs of a batch size, for a replacement session's warm-up runs; null: replacements take traffic at once.</summary>
    public Func<int, ModelInput[]>? WarmUpInputs { get; init; }

    /// <summary>The sessions serving now (a hung one is out of the pool until its replacement is created).</summary>
    public IReadOnlyList<IModelSession> Sessions
    {
        get
        {
            lock (_gate)
            {
                return [.. _sessions.OfType<IModelSession>()];
            }
        }
    }

    /// <summary>
    /// While set, a batch goes at once with whatever has queued, without waiting
    /// <see cref="InferenceOptions.MaxQueueDelay"/> for more. The warm-up's requests come one at a time
    /// and nothing else arrives to fill their batches, so the wait would only add the delay to start-up
    /// once per request: a minute with a 4 s delay.
    /// </summary>
    public bool SkipsQueueDelay
    {
        get => Volatile.Read(ref _skipsQueueDelay);
        set => Volatile.Write(ref _skipsQueueDelay, value);
    }

    /// <summary>Where model runs and queue depth are reported; the engine gives each model its own.</summary>
    public ModelTelemetry Telemetry { get; init; }

    /// <summary>Queues <paramref name="input"/> and waits for its share of a batched run.</summary>
    /// <exception cref="SegmentationException">The queue is full, or the deadline passed while queued.</exception>
    /// <exception cref="OperationCanceledException">The caller cancelled while the request was queued.</exception>
    public Task<BatchedOutput> RunAsync(ModelInput input, DateTimeOffset? deadline, CancellationToken cancellationToken) =>
        RunAsync(input, deadline, waitForRoom: false, cancellationToken);

    /// <summary>
    /// As <see cref="RunAsync(ModelInput, DateTimeOffset?, CancellationToken)"/>; with
    /// <paramref name="waitForRoom"/> a full queue is waited out (until the deadline, cancellation or
    /// shutdown) instead of turning the caller away.
    /// </summary>
    public async Task<BatchedOutput> RunAsync(ModelInput input, DateTimeOffset? deadline, bool waitForRoom, CancellationToken cancellationToken)
    {
        while (true)
        {
            ThrowIfNotRunnable(deadline, cancellationToken);
            if (TryReserve())
            {
                return await EnqueueAsync(input, deadline, cancellationToken).ConfigureAwait(false);
            }

            if (!waitForRoom)
            {
                Interlocked.Increment(ref _rejected);
                throw new SegmentationException(SegmentationErrorKind.QueueFull, $"The queue is full ({_options.MaxQueueSize} requests waiting); retry later.")
                {
                    RetryAfter = _options.QueueFullRetryAfter,
                };
            }

            await WaitForRoomAsync(deadline, cancellationToken).ConfigureAwait(false);
        }
    }

    private void ThrowIfNotRunnable(DateTimeOffset? deadline, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _stopping))
        {
            throw new SegmentationException(SegmentationErrorKind.Unavailable, "The server is shutting down.") { RetryAfter = _options.QueueFullRetryAfter };
        }

        if (deadline is { } due && due <= _time.GetUtcNow())
        {
            Interlocked.Increment(ref _expired);
            throw DeadlineExceeded();
        }

        if (cancellationToken.IsCancellationRequested)
        {
            Interlocked.Increment(ref _cancelled);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    private bool TryReserve()
    {
        if (Interlocked.Increment(ref _queued) > _options.MaxQueueSize)
        {
            // Given back as any place is: a waiter that looked while this attempt held the count up must
            // be woken, or it could sleep with the queue empty.
            Unreserve();
            return false;
        }

        return true;
    }

    // A place in the queue was given up (taken into a batch, abandoned): wake one caller waiting for room.
    private void Unreserve()
    {
        Interlocked.Decrement(ref _queued);
        if (Volatile.Read(ref _roomWaiters) > 0)
        {
            _room.Release();
        }
    }

    // Registered as a waiter before looking again, so a place given up in between is never missed; a
    // spare release only makes some waiter look once more.
    private async Task WaitForRoomAsync(DateTimeOffset? deadline, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _waitedForRoom);
        Interlocked.Increment(ref _roomWaiters);
        try
        {
            if (Volatile.Read(ref _queued) < _options.MaxQueueSize || Volatile.Read(ref _stopping))
            {
                return;
            }

            var wait = deadline is { } due ? due - _time.GetUtcNow() : Timeout.InfiniteTimeSpan;
            if (wait != Timeout.InfiniteTimeSpan && wait <= TimeSpan.Zero)
            {
                return;
            }

            // A timer waits at most about 24.8 days; a deadline further off is looked at again then.
            wait = wait > s_longestWait ? s_longestWait : wait;

            await _room.WaitAsync(wait, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _roomWaiters);
        }
    }

    private Task<BatchedOutput> EnqueueAsync(ModelInput input, DateTimeOffset? deadline, CancellationToken cancellationToken)
    {
        var item = new BatchWorkItem(input, _time.GetTimestamp(), deadline) { TraceContext = Activity.Current?.Context ?? default };
        if (cancellationToken.CanBeCanceled)
        {
            item.CancellationRegistration = cancellationToken.Register(
                static state =>
                {
                    var (scheduler, queued) = ((BatchScheduler, BatchWorkItem))state!;
                    scheduler.Abandon(queued, cancelled: true);
                },
                (this, item));
        }

        lock (_gate)
        {
            // Checked again under the lock: disposal sweeps the queue once, after which nobody reads it.
            if (_stopping)
            {
                if (item.TryAbandon())
                {
                    Unreserve();
                    item.CancellationRegistration.Dispose();
                    item.Completion.TrySetException(new SegmentationException(SegmentationErrorKind.Unavailable, "The server is shutting down.") { RetryAfter = _options.QueueFullRetryAfter });
                }

                return item.Completion.Task;
            }

            _pending.Add(item);
            Monitor.Pulse(_gate);
        }

        return item.Completion.Task;
    }

    /// <summary>
    /// Zeroes the totals (not the queue), so the warm-up's synthetic requests are not counted as served.
    /// </summary>
    public void ResetTotals()
    {
        Interlocked.Exchange(ref _completed, 0);
        Interlocked.Exchange(ref _rejected, 0);
        Interlocked.Exchange(ref _expired, 0);
        Interlocked.Exchange(ref _cancelled, 0);
        Interlocked.Exchange(ref _batchCount, 0);
        Interlocked.Exchange(ref _failedRuns, 0);
        Interlocked.Exchange(ref _hungRuns, 0);
        Interlocked.Exchange(ref _waitedForRoom, 0);
        for (var i = 0; i < _batchSizeCounts.Length; i++)
        {
            Interlocked.Exchange(ref _batchSizeCounts[i], 0);
        }
    }

    public SchedulerCounters GetCounters() => new()
    {
        Queued = Volatile.Read(ref _queued),
        InFlight = Volatile.Read(ref _inFlight),
        Completed = Interlocked.Read(ref _completed),
        Rejected = Interlocked.Read(ref _rejected),
        Expired = Interlocked.Read(ref _expired),
        Cancelled = Interlocked.Read(ref _cancelled),
        Batches = Interlocked.Read(ref _batchCount),
        FailedRuns = Interlocked.Read(ref _failedRuns),
        HungRuns = Interlocked.Read(ref _hungRuns),
        WaitedForRoom = Interlocked.Read(ref _waitedForRoom),
        BatchSizeCounts = [.. _batchSizeCounts.Select(count => Interlocked.Read(ref count))],
    };

    // A cancelled or expired item is failed at once; workers drop it from the list when they next look.
    private void Abandon(BatchWorkItem item, bool cancelled)
    {
        if (!item.TryAbandon())
        {
            return;
        }

        Unreserve();
        item.CancellationRegistration.Dispose();
        var expired = item.Deadline is { } due && due <= _time.GetUtcNow();
        if (expired || !cancelled)
        {
            Interlocked.Increment(ref _expired);
            item.Completion.TrySetException(DeadlineExceeded());
        }
        else
        {
            Interlocked.Increment(ref _cancelled);
            item.Completion.TrySetCanceled();
        }
    }

    // Blocks this session's thread until a batch is due: as many same-shape requests as MaxBatchSize,
    // or whatever has gathered once the oldest has waited MaxQueueDelay. Null when stopping.
    private List<BatchWorkItem>? TakeBatch()
    {
        lock (_gate)
        {
            while (true)
            {
                if (_stopping)
                {
                    return null;
                }

                DropAbandonedLocked();
                if (_pending.Count == 0)
                {
                    Monitor.Wait(_gate);
                    continue;
                }

                var first = _pending[0];
                var sameShape = _pending.Count(item => item.ShapeKey == first.ShapeKey);
                var waited = _time.GetElapsedTime(first.EnqueuedTimestamp);
                if (sameShape < _options.MaxBatchSize && waited < _options.MaxQueueDelay && !SkipsQueueDelay)
                {
                    // Whole milliseconds, rounded up: Monitor.Wait truncates, and under 1 ms left it would
                    // return at once and spin here until the delay is over.
                    Monitor.Wait(_gate, (int)Math.Ceiling((_options.MaxQueueDelay - waited).TotalMilliseconds));
                    continue;
                }

                var batch = new List<BatchWorkItem>(Math.Min(sameShape, _options.MaxBatchSize));
                for (var i = 0; i < _pending.Count && batch.Count < _options.MaxBatchSize;)
                {
                    var item = _pending[i];
                    if (item.ShapeKey != first.ShapeKey)
                    {
                        i++;
                        continue;
                    }

                    _pending.RemoveAt(i);
                    if (item.TryTake())
                    {
                        item.CancellationRegistration.Dispose();
                        Unreserve();
                        Interlocked.Increment(ref _inFlight);
                        batch.Add(item);
                    }
                }

                if (batch.Count > 0)
                {
                    if (_pending.Count > 0)
                    {
                        // Requests left behind (past a full batch, or of another shape) may be due now: an
                        // idle worker of another session must look, not sleep until the next arrival.
                        Monitor.Pulse(_gate);
                    }

                    return batch;
                }
            }
        }
    }

    // Removes items that were cancelled, and fails those whose deadline has passed, so neither runs.
    private void DropAbandonedLocked()
    {
        var now = _time.GetUtcNow();
        _pending.RemoveAll(item =>
        {
            if (item.IsPending && item.Deadline is { } due && due <= now)
            {
                Abandon(item, cancelled: false);
            }

            return !item.IsPending;
        });
    }

    private static SegmentationException DeadlineExceeded() =>
        new(SegmentationErrorKind.DeadlineExceeded, "The deadline passed while the request was queued; it was not run.");
}
