using System.Diagnostics;
using System.Threading.Channels;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Engine.Batching;

/// <summary>
/// Dynamic batching in Triton's sense for one model: requests with the same input shape are gathered
/// up to <see cref="InferenceOptions.MaxBatchSize"/> for at most <see cref="InferenceOptions.MaxQueueDelay"/>
/// after the oldest arrived, and a batch is formed only when a session is free, so batches grow under
/// load. The queue is bounded: a full queue turns callers away at once. Requests whose deadline passes
/// or whose caller cancels leave the queue without running.
/// </summary>
internal sealed partial class BatchScheduler : IAsyncDisposable
{
    private readonly ModelSession[] _sessions;
    private readonly InferenceOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<BatchWorkItem> _arrivals = Channel.CreateUnbounded<BatchWorkItem>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Channel<List<BatchWorkItem>> _batches = Channel.CreateUnbounded<List<BatchWorkItem>>();
    private readonly SemaphoreSlim _freeSessions;
    private readonly CancellationTokenSource _stopping = new();
    private readonly long[] _batchSizeCounts;
    private readonly List<Task> _loops = [];
    private int _queued;
    private int _inFlight;
    private long _completed;
    private long _rejected;
    private long _expired;
    private long _cancelled;
    private long _batchCount;

    public BatchScheduler(ModelSession[] sessions, InferenceOptions options, TimeProvider time, ILogger logger)
    {
        _sessions = sessions;
        _options = options;
        _time = time;
        _logger = logger;
        _freeSessions = new SemaphoreSlim(sessions.Length, sessions.Length);
        _batchSizeCounts = new long[options.MaxBatchSize];
    }

    public IReadOnlyList<ModelSession> Sessions => _sessions;

    public void Start()
    {
        _loops.Add(Task.Run(() => DispatchAsync(_stopping.Token)));
        foreach (var session in _sessions)
        {
            _loops.Add(Task.Run(() => WorkAsync(session, _stopping.Token)));
        }
    }

    /// <summary>Queues <paramref name="input"/> and waits for its share of a batched run.</summary>
    /// <exception cref="SegmentationException">The queue is full, or the deadline passed while queued.</exception>
    /// <exception cref="OperationCanceledException">The caller cancelled while the request was queued.</exception>
    public Task<BatchedOutput> RunAsync(ModelInput input, DateTimeOffset? deadline, CancellationToken cancellationToken)
    {
        if (_stopping.IsCancellationRequested)
        {
            throw new SegmentationException(SegmentationErrorKind.Unavailable, "The server is shutting down.");
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

        if (Interlocked.Increment(ref _queued) > _options.MaxQueueSize)
        {
            Interlocked.Decrement(ref _queued);
            Interlocked.Increment(ref _rejected);
            throw new SegmentationException(SegmentationErrorKind.QueueFull, $"The queue is full ({_options.MaxQueueSize} requests waiting); retry later.")
            {
                RetryAfter = _options.QueueFullRetryAfter,
            };
        }

        var item = new BatchWorkItem(input, _time.GetTimestamp(), deadline);
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

        _arrivals.Writer.TryWrite(item);
        return item.Completion.Task;
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
        BatchSizeCounts = [.. _batchSizeCounts.Select(count => Interlocked.Read(ref count))],
    };

    private void Abandon(BatchWorkItem item, bool cancelled)
    {
        if (!item.TryAbandon())
        {
            return;
        }

        Interlocked.Decrement(ref _queued);
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

    private async Task DispatchAsync(CancellationToken stopping)
    {
        var pending = new List<BatchWorkItem>();
        try
        {
            while (true)
            {
                await _freeSessions.WaitAsync(stopping).ConfigureAwait(false);
                var batch = await GatherBatchAsync(pending, stopping).ConfigureAwait(false);
                await _batches.Writer.WriteAsync(batch, stopping).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            _batches.Writer.TryComplete();
            DrainAfterStop(pending);
        }
    }

    private async Task<List<BatchWorkItem>> GatherBatchAsync(List<BatchWorkItem> pending, CancellationToken stopping)
    {
        while (true)
        {
            TakeArrivals(pending);
            if (pending.Count == 0)
            {
                await _arrivals.Reader.WaitToReadAsync(stopping).ConfigureAwait(false);
                continue;
            }

            var first = pending[0];
            var sameShape = pending.Count(item => item.ShapeKey == first.ShapeKey);
            var waited = _time.GetElapsedTime(first.EnqueuedTimestamp);
            if (sameShape < _options.MaxBatchSize && waited < _options.MaxQueueDelay)
            {
                await WaitForArrivalAsync(_options.MaxQueueDelay - waited, stopping).ConfigureAwait(false);
                continue;
            }

            var batch = new List<BatchWorkItem>(Math.Min(sameShape, _options.MaxBatchSize));
            for (var i = 0; i < pending.Count && batch.Count < _options.MaxBatchSize;)
            {
                var item = pending[i];
                if (item.ShapeKey != first.ShapeKey)
                {
                    i++;
                    continue;
                }

                pending.RemoveAt(i);
                if (item.TryTake())
                {
                    item.CancellationRegistration.Dispose();
                    Interlocked.Decrement(ref _queued);
                    Interlocked.Increment(ref _inFlight);
                    batch.Add(item);
                }
            }

            if (batch.Count > 0)
            {
                return batch;
            }
        }
    }

    // Moves new arrivals into the dispatcher's own list and drops items that were cancelled or
    // whose deadline has passed, so they never reach a session.
    private void TakeArrivals(List<BatchWorkItem> pending)
    {
        while (_arrivals.Reader.TryRead(out var item))
        {
            pending.Add(item);
        }

        var now = _time.GetUtcNow();
        pending.RemoveAll(item =>
        {
            if (item.IsPending && item.Deadline is { } due && due <= now)
            {
                Abandon(item, cancelled: false);
            }

            return !item.IsPending;
        });
    }

    private async Task WaitForArrivalAsync(TimeSpan timeout, CancellationToken stopping)
    {
        using var timeoutSource = new CancellationTokenSource(timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stopping, timeoutSource.Token);
        try
        {
            await _arrivals.Reader.WaitToReadAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            // The batch's wait is over; it goes out with what it has.
        }
    }

    private async Task WorkAsync(ModelSession session, CancellationToken stopping)
    {
        try
        {
            await foreach (var batch in _batches.Reader.ReadAllAsync(stopping).ConfigureAwait(false))
            {
                try
                {
                    RunBatch(session, batch);
                }
                finally
                {
                    _freeSessions.Release();
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }

    private void RunBatch(ModelSession session, List<BatchWorkItem> batch)
    {
        var started = _time.GetTimestamp();
        try
        {
            var outputs = session.Run([.. batch.Select(item => item.Input)]);
            var inferenceTime = _time.GetElapsedTime(started);
            Interlocked.Increment(ref _batchCount);
            Interlocked.Increment(ref _batchSizeCounts[batch.Count - 1]);
            for (var i = 0; i < batch.Count; i++)
            {
                var queueTime = TimeSpan.FromTicks((started - batch[i].EnqueuedTimestamp) * TimeSpan.TicksPerSecond / _time.TimestampFrequency);
                Interlocked.Increment(ref _completed);
                Interlocked.Decrement(ref _inFlight);
                batch[i].Completion.TrySetResult(new BatchedOutput(outputs[i], batch.Count, queueTime, inferenceTime, session.Placement.ActualDevice));
            }
        }
        catch (Exception ex)
        {
            LogBatchFailed(_logger, ex, batch.Count);
            foreach (var item in batch)
            {
                Interlocked.Decrement(ref _inFlight);
                item.Completion.TrySetException(ex);
            }
        }
    }

    private void DrainAfterStop(List<BatchWorkItem> pending)
    {
        TakeArrivals(pending);
        foreach (var item in pending)
        {
            if (item.TryAbandon())
            {
                Interlocked.Decrement(ref _queued);
                item.Completion.TrySetException(new SegmentationException(SegmentationErrorKind.Unavailable, "The server is shutting down."));
            }
        }

        pending.Clear();
    }

    private static SegmentationException DeadlineExceeded() =>
        new(SegmentationErrorKind.DeadlineExceeded, "The deadline passed while the request was queued; it was not run.");

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_loops).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        // Batches formed but not started are failed rather than left waiting.
        while (_batches.Reader.TryRead(out var batch))
        {
            foreach (var item in batch)
            {
                Interlocked.Decrement(ref _inFlight);
                item.Completion.TrySetException(new SegmentationException(SegmentationErrorKind.Unavailable, "The server is shutting down."));
            }
        }

        foreach (var session in _sessions)
        {
            session.Dispose();
        }

        _freeSessions.Dispose();
        _stopping.Dispose();
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Error, Message = "A model run of {BatchSize} images failed")]
    private static partial void LogBatchFailed(ILogger logger, Exception exception, int batchSize);
}
