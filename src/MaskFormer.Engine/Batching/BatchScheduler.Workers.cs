using System.Diagnostics;
using MaskFormer.Engine.Diagnostics;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Engine.Batching;

/// <summary>
/// The session workers. A run that throws fails only the requests of its batch, and the session goes on
/// taking batches. A run still going after <see cref="InferenceOptions.SessionRunTimeout"/> is abandoned:
/// its requests are answered UNAVAILABLE with a retry delay at once, ONNX Runtime is asked to terminate
/// it, the session leaves the pool, and a new worker creates a replacement session for its slot. The old
/// thread disposes the old session whenever its run returns; a run that never returns keeps only that
/// thread and session. A replacement warms up before it takes traffic (BatchScheduler.Replacement.cs).
/// </summary>
internal sealed partial class BatchScheduler
{
    private readonly IModelSession?[] _sessions;
    private readonly Func<int, IModelSession> _replace;
    private readonly List<Worker> _workers = [];
    private long _failedRuns;
    private long _hungRuns;

    // Each session gets a dedicated thread: ONNX Runtime's Run blocks its caller anyway, and a thread of
    // its own starts the next batch the moment one ends, never queued behind thread-pool work.
    public void Start()
    {
        EngineMetrics.Track(Telemetry, () => Volatile.Read(ref _queued));
        lock (_gate)
        {
            for (var slot = 0; slot < _sessions.Length; slot++)
            {
                StartWorkerLocked(slot, _sessions[slot]);
            }
        }
    }

    private void StartWorkerLocked(int slot, IModelSession? session, bool pauseFirst = false)
    {
        var worker = new Worker(slot, session) { PauseFirst = pauseFirst };
        var thread = new Thread(() => Work(worker)) { IsBackground = true, Name = $"maskformer-session-{slot}" };
        worker.Thread = thread;
        _workers.Add(worker);
        ModelThreadPriority.Start(thread);
    }

    private void Work(Worker worker)
    {
        if (worker.Session is null && !CreateReplacement(worker))
        {
            return;
        }

        while (TakeBatch() is { } batch)
        {
            if (!RunBatch(worker, batch))
            {
                // Abandoned by the watchdog; a new worker serves this slot.
                worker.Session!.Dispose();
                LogHungRunEnded(_logger, worker.Slot);
                return;
            }
        }
    }

    // False when the watchdog abandoned the run: its requests are answered already.
    private bool RunBatch(Worker worker, List<BatchWorkItem> batch)
    {
        var session = worker.Session!;
        var started = _time.GetTimestamp();
        using var span = ModelRunSpan.Start(batch, session.Placement.ActualDevice, Telemetry);
        var run = new RunClaim();
        var watchdog = StartWatchdog(() => OnRunTimedOut(worker, batch, run));
        ModelOutput[] outputs;
        try
        {
            outputs = session.Run([.. batch.Select(item => item.Input)]);
        }
        catch (Exception ex)
        {
            watchdog?.Dispose();
            if (!run.TryClaim())
            {
                return false;
            }

            Interlocked.Increment(ref _failedRuns);
            span?.SetStatus(ActivityStatusCode.Error, ex.Message).SetTag(TelemetryTags.ErrorType, TelemetryTags.ErrorTypeOf(ex));
            LogBatchFailed(_logger, ex, batch.Count, worker.Slot);
            var error = new SegmentationException(SegmentationErrorKind.ModelRunFailed, $"The model run failed: {ex.Message.Split('\n')[0].Trim()}", ex);
            Fail(batch, error);
            return true;
        }

        watchdog?.Dispose();
        if (!run.TryClaim())
        {
            foreach (var output in outputs)
            {
                output.Dispose();
            }

            return false;
        }

        var inferenceTime = _time.GetElapsedTime(started);
        Telemetry.RecordModelRun(batch.Count, inferenceTime, session.Placement.ActualDevice);
        Interlocked.Increment(ref _batchCount);
        Interlocked.Increment(ref _batchSizeCounts[batch.Count - 1]);
        for (var i = 0; i < batch.Count; i++)
        {
            var queueTime = TimeSpan.FromTicks((started - batch[i].EnqueuedTimestamp) * TimeSpan.TicksPerSecond / _time.TimestampFrequency);
            Interlocked.Increment(ref _completed);
            Interlocked.Decrement(ref _inFlight);
            batch[i].Completion.TrySetResult(new BatchedOutput(outputs[i], batch.Count, queueTime, inferenceTime, session.Placement.ActualDevice));
        }

        return true;
    }

    private void OnRunTimedOut(Worker worker, List<BatchWorkItem> batch, RunClaim run)
    {
        if (!TryTerminateHung(run, worker.Session!))
        {
            return;
        }

        LogRunHung(_logger, Telemetry.Name, worker.Slot, batch.Count, _options.SessionRunTimeout.TotalSeconds);
        Fail(batch, new SegmentationException(
            SegmentationErrorKind.Unavailable,
            $"The model run did not finish within {_options.SessionRunTimeout.TotalSeconds:0.###} s (MaskFormer:Inference:SessionRunTimeout); its session is being replaced. Retry.")
        {
            RetryAfter = _options.QueueFullRetryAfter,
        });
        Abandon(worker, pauseFirst: false);
    }

    /// <summary>A run's watchdog: calls <paramref name="onTimedOut"/> once the run limit has passed; null without a limit.</summary>
    private ITimer? StartWatchdog(Action onTimedOut) => _options.SessionRunTimeout > TimeSpan.Zero
        ? _time.CreateTimer(static state => ((Action)state!)(), onTimedOut, _options.SessionRunTimeout, Timeout.InfiniteTimeSpan)
        : null;

    /// <summary>
    /// Terminates a run past its limit and counts it, unless it ended first (false). Claimed and terminated
    /// under the claim's lock: the worker disposes the session only after losing the claim, so Terminate
    /// never meets a disposed session.
    /// </summary>
    private bool TryTerminateHung(RunClaim run, IModelSession session)
    {
        lock (run.Gate)
        {
            if (!run.TryClaim())
            {
                return false;
            }

            session.Terminate();
        }

        Interlocked.Increment(ref _hungRuns);
        return true;
    }

    /// <summary>Leaves a worker's thread to its hung run and gives its slot to a new worker.</summary>
    private void Abandon(Worker worker, bool pauseFirst)
    {
        lock (_gate)
        {
            worker.Abandoned = true;
            _sessions[worker.Slot] = null;
            if (!_stopping)
            {
                StartWorkerLocked(worker.Slot, session: null, pauseFirst);
            }
        }
    }

    private void Fail(List<BatchWorkItem> batch, SegmentationException error)
    {
        foreach (var item in batch)
        {
            Interlocked.Decrement(ref _inFlight);
            item.Completion.TrySetException(error);
        }
    }

    public async ValueTask DisposeAsync()
    {
        EngineMetrics.Untrack(Telemetry);
        Worker[] workers;
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
            workers = [.. _workers];
        }

        // Callers waiting for room look again, see the scheduler stopping and leave.
        _room.Release(Math.Max(1, Volatile.Read(ref _roomWaiters)));

        // A worker finishes the batch it is running; then its thread ends. An abandoned worker's run
        // may never return, so it is not waited for: it disposes its own session if it does.
        await Task.Run(() =>
        {
            foreach (var worker in workers)
            {
                while (!worker.Abandoned)
                {
                    if (worker.Thread!.Join(TimeSpan.FromMilliseconds(100)))
                    {
                        break;
                    }
                }
            }
        }).ConfigureAwait(false);

        lock (_gate)
        {
            foreach (var item in _pending)
            {
                if (item.TryAbandon())
                {
                    Interlocked.Decrement(ref _queued);
                    item.CancellationRegistration.Dispose();
                    item.Completion.TrySetException(new SegmentationException(SegmentationErrorKind.Unavailable, "The server is shutting down.") { RetryAfter = _options.QueueFullRetryAfter });
                }
            }

            _pending.Clear();
            for (var slot = 0; slot < _sessions.Length; slot++)
            {
                _sessions[slot]?.Dispose();
                _sessions[slot] = null;
            }
        }
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Error, Message = "A model run of {BatchSize} images failed on session {Slot}; only its requests fail")]
    private static partial void LogBatchFailed(ILogger logger, Exception exception, int batchSize, int slot);

    [LoggerMessage(EventId = 201, Level = LogLevel.Error, Message = "Model {Model} session {Slot}: a run of {BatchSize} images is past the {Timeout} s run timeout; its requests are answered UNAVAILABLE and the session is replaced")]
    private static partial void LogRunHung(ILogger logger, string model, int slot, int batchSize, double timeout);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "Model {Model} session {Slot} replaced by a new session")]
    private static partial void LogSessionReplaced(ILogger logger, string model, int slot);

    [LoggerMessage(EventId = 203, Level = LogLevel.Error, Message = "Model {Model} session {Slot} could not be created again; retrying in 5 s")]
    private static partial void LogReplacementFailed(ILogger logger, Exception exception, string model, int slot);

    [LoggerMessage(EventId = 204, Level = LogLevel.Information, Message = "The abandoned run of session {Slot} returned; the session it ran on is released")]
    private static partial void LogHungRunEnded(ILogger logger, int slot);

    /// <summary>One thread and the session it drives; abandoned when its run hung.</summary>
    private sealed class Worker(int slot, IModelSession? session)
    {
        public int Slot { get; } = slot;

        public IModelSession? Session { get; set; } = session;

        /// <summary>Wait the retry pause before creating this slot's session (the last replacement hung in its warm-up).</summary>
        public bool PauseFirst { get; init; }

        public Thread? Thread { get; set; }

        public bool Abandoned
        {
            get => Volatile.Read(ref _abandoned);
            set => Volatile.Write(ref _abandoned, value);
        }

        private bool _abandoned;
    }

    /// <summary>Who answers a run's requests: the worker when it returns, or the watchdog when it hangs.</summary>
    private sealed class RunClaim
    {
        private bool _claimed;

        public Lock Gate { get; } = new();

        public bool TryClaim()
        {
            lock (Gate)
            {
                var first = !_claimed;
                _claimed = true;
                return first;
            }
        }
    }
}
