namespace MaskFormer.Server.Tests;

/// <summary>
/// A clock that moves only when told: <see cref="Advance"/> fires, on the caller's thread and before it returns,
/// each timer made on it whose time the clock passes, as often as its period fits.
/// </summary>
internal sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private readonly Lock _gate = new();
    private readonly List<Timer> _timers = [];
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow()
    {
        lock (_gate)
        {
            return _now;
        }
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new Timer(this, callback, state);
        timer.Change(dueTime, period);
        lock (_gate)
        {
            _timers.Add(timer);
        }

        return timer;
    }

    public void Advance(TimeSpan by)
    {
        DateTimeOffset until;
        lock (_gate)
        {
            until = _now + by;
        }

        while (NextDue(until) is { } timer)
        {
            timer.Fire();
        }

        lock (_gate)
        {
            _now = until;
        }
    }

    // The timer due soonest, no later than `until`, with the clock moved to its time; null when none is.
    private Timer? NextDue(DateTimeOffset until)
    {
        lock (_gate)
        {
            var next = _timers.Where(t => t.Due is { } due && due <= until).MinBy(t => t.Due);
            if (next is not null)
            {
                _now = next.Due!.Value;
                next.Due = next.Period is { } period ? _now + period : null;
            }

            return next;
        }
    }

    private sealed class Timer(ManualClock clock, TimerCallback callback, object? state) : ITimer
    {
        public DateTimeOffset? Due { get; set; }

        public TimeSpan? Period { get; private set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (clock._gate)
            {
                Due = dueTime == Timeout.InfiniteTimeSpan ? null : clock._now + dueTime;
                Period = period == Timeout.InfiniteTimeSpan || period == TimeSpan.Zero ? null : period;
            }

            return true;
        }

        public void Fire() => callback(state);

        public void Dispose()
        {
            lock (clock._gate)
            {
                clock._timers.Remove(this);
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
