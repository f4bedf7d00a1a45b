using MaskFormer.Engine.Diagnostics;
using Microsoft.Extensions.Options;

namespace MaskFormer.Engine.Admission;

/// <summary>
/// Bounds the work a request does outside the model run: at most <see cref="AdmissionOptions.MaxConcurrency"/>
/// requests decode, pre-process, post-process or encode at once, and the requests between decoding and
/// the end of encoding hold at most <see cref="AdmissionOptions.MaxPixelsInFlight"/> pixels. Requests
/// wait in arrival order (a large image at the head is not overtaken, so it cannot starve); a request
/// coming back from the model to post-process goes ahead of new ones, so work already paid for finishes
/// first and nothing can hold pixels while waiting behind requests that wait for pixels. Callers turned
/// away get <see cref="SegmentationErrorKind.QueueFull"/> with a retry delay; the host maps it.
/// </summary>
public sealed class AdmissionGate
{
    private readonly AdmissionOptions _options;
    private readonly TimeProvider _time;
    private readonly int _slots;
    private readonly Lock _lock = new();
    private readonly LinkedList<Waiter> _entering = new();
    private readonly LinkedList<Waiter> _resuming = new();
    private int _running;
    private long _pixels;
    private int _peakRunning;
    private long _peakPixels;
    private long _admitted;
    private long _waited;
    private long _rejected;

    /// <summary>Creates the gate.</summary>
    public AdmissionGate(IOptions<AdmissionOptions> options, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _time = time ?? TimeProvider.System;
        _slots = _options.EffectiveConcurrency;
    }

    /// <summary>Raised (outside the gate's lock) when the last request in flight finishes and none waits.</summary>
    internal event Action? BecameIdle;

    /// <summary>The gate's settings.</summary>
    internal AdmissionOptions Options => _options;

    /// <summary>The number of requests that may run the gated stages at once.</summary>
    public int Concurrency => _slots;

    /// <summary>The gate's counters now, and its peaks since start.</summary>
    public AdmissionCounters GetCounters()
    {
        lock (_lock)
        {
            return new AdmissionCounters
            {
                Running = _running,
                PixelsInFlight = _pixels,
                Waiting = _entering.Count + _resuming.Count,
                PeakRunning = _peakRunning,
                PeakPixelsInFlight = _peakPixels,
                Admitted = _admitted,
                Waited = _waited,
                Rejected = _rejected,
            };
        }
    }

    /// <summary>
    /// Admits a request of <paramref name="pixels"/>, holding a concurrency slot and its pixels until the
    /// ticket is disposed. With <paramref name="waitAsLongAsNeeded"/> false the wait is bounded by
    /// <see cref="AdmissionOptions.MaxWait"/> and <see cref="AdmissionOptions.MaxWaiting"/>.
    /// </summary>
    /// <exception cref="SegmentationException">Turned away (<see cref="SegmentationErrorKind.QueueFull"/>, with a retry delay).</exception>
    /// <exception cref="OperationCanceledException">The caller cancelled while waiting.</exception>
    internal Task<AdmissionTicket> EnterAsync(long pixels, bool waitAsLongAsNeeded, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Waiter waiter;
        lock (_lock)
        {
            if (_entering.Count == 0 && _resuming.Count == 0 && CanEnterLocked(pixels))
            {
                return Task.FromResult(AdmitLocked(pixels));
            }

            if (!waitAsLongAsNeeded && (_entering.Count >= _options.MaxWaiting || _options.MaxWait <= TimeSpan.Zero))
            {
                _rejected++;
                EngineMetrics.AdmissionRejected.Add(1);
                throw Busy();
            }

            waiter = new Waiter(this, pixels);
            waiter.Node = _entering.AddLast(waiter);
            _waited++;
        }

        return WaitAsync(waiter, waitAsLongAsNeeded ? null : _options.MaxWait, cancellationToken);
    }

    // Takes a concurrency slot back for a request that holds its pixels (after the model run).
    internal Task ResumeAsync(AdmissionTicket ticket, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Waiter waiter;
        lock (_lock)
        {
            if (_running < _slots)
            {
                TakeSlotLocked();
                return Task.CompletedTask;
            }

            waiter = new Waiter(this, ticket.Pixels) { Ticket = ticket };
            waiter.Node = _resuming.AddLast(waiter);
        }

        return WaitAsync(waiter, null, cancellationToken);
    }

    internal void ReleaseSlot()
    {
        lock (_lock)
        {
            _running--;
            DispatchLocked();
        }
    }

    internal void Release(long pixels, bool holdsSlot)
    {
        bool idle;
        lock (_lock)
        {
            _pixels -= pixels;
            if (holdsSlot)
            {
                _running--;
            }

            DispatchLocked();
            idle = _running == 0 && _pixels == 0 && _entering.Count == 0 && _resuming.Count == 0;
        }

        if (idle)
        {
            BecameIdle?.Invoke();
        }
    }

    /// <summary>True when no request is admitted or waiting.</summary>
    internal bool IsIdle
    {
        get
        {
            lock (_lock)
            {
                return _running == 0 && _pixels == 0 && _entering.Count == 0 && _resuming.Count == 0;
            }
        }
    }

    private async Task<AdmissionTicket> WaitAsync(Waiter waiter, TimeSpan? limit, CancellationToken cancellationToken)
    {
        using var timeout = limit is { } wait ? new CancellationTokenSource(wait, _time) : null;
        await using (cancellationToken.Register(static state => ((Waiter)state!).Abandon(busy: false), waiter).ConfigureAwait(false))
        await using ((timeout?.Token ?? CancellationToken.None).Register(static state => ((Waiter)state!).Abandon(busy: true), waiter).ConfigureAwait(false))
        {
            try
            {
                return await waiter.Completion.Task.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(cancellationToken);
            }
        }
    }

    // Leaves the queue when the caller cancels or the wait runs out; a waiter already admitted keeps its place.
    private void Abandon(Waiter waiter, bool busy)
    {
        lock (_lock)
        {
            if (waiter.Node?.List is not { } list)
            {
                return;
            }

            list.Remove(waiter.Node);
            if (busy)
            {
                _rejected++;
                EngineMetrics.AdmissionRejected.Add(1);
            }

            // A waiter at the head may have held back smaller ones behind it.
            DispatchLocked();
        }

        if (busy)
        {
            waiter.Completion.TrySetException(Busy());
        }
        else
        {
            waiter.Completion.TrySetCanceled();
        }
    }

    private void DispatchLocked()
    {
        while (_resuming.First is { } resume && _running < _slots)
        {
            _resuming.RemoveFirst();
            TakeSlotLocked();
            resume.Value.Completion.TrySetResult(resume.Value.Ticket!);
        }

        while (_resuming.Count == 0 && _entering.First is { } next && CanEnterLocked(next.Value.Pixels))
        {
            _entering.RemoveFirst();
            next.Value.Completion.TrySetResult(AdmitLocked(next.Value.Pixels));
        }
    }

    private bool CanEnterLocked(long pixels) =>
        _running < _slots && (_pixels == 0 || _pixels + pixels <= _options.MaxPixelsInFlight);

    private AdmissionTicket AdmitLocked(long pixels)
    {
        TakeSlotLocked();
        _pixels += pixels;
        _peakPixels = Math.Max(_peakPixels, _pixels);
        _admitted++;
        return new AdmissionTicket(this, pixels);
    }

    private void TakeSlotLocked()
    {
        _running++;
        _peakRunning = Math.Max(_peakRunning, _running);
    }

    private SegmentationException Busy() => new(
        SegmentationErrorKind.QueueFull,
        $"The server is busy decoding and post-processing other images (at most {_slots} at once and {_options.MaxPixelsInFlight} pixels in flight); retry shortly.")
    {
        RetryAfter = _options.RetryAfter,
    };

    private sealed class Waiter(AdmissionGate gate, long pixels)
    {
        public long Pixels { get; } = pixels;

        public LinkedListNode<Waiter>? Node { get; set; }

        public AdmissionTicket? Ticket { get; init; }

        public TaskCompletionSource<AdmissionTicket> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Abandon(bool busy) => gate.Abandon(this, busy);
    }
}
