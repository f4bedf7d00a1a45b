using MaskFormer.Engine.Admission;
using Microsoft.Extensions.Options;

namespace MaskFormer.Engine.Tests.Admission;

/// <summary>
/// The gate's rules, observed through its tasks and counters (never through timing): the concurrency
/// bound, the pixel budget, the bounded waiting queue and the priority of requests coming back from the
/// model.
/// </summary>
public sealed class AdmissionGateTests
{
    [Fact]
    public async Task Enter_MoreThanTheConcurrency_WaitsUntilASlotIsFree()
    {
        var gate = Gate(new AdmissionOptions { MaxConcurrency = 2, MaxWait = TimeSpan.FromMinutes(5) });

        var first = await gate.EnterAsync(10, waitAsLongAsNeeded: false, CancellationToken.None);
        var second = await gate.EnterAsync(10, waitAsLongAsNeeded: false, CancellationToken.None);
        var third = gate.EnterAsync(10, waitAsLongAsNeeded: false, CancellationToken.None);

        Assert.False(third.IsCompleted);
        Assert.Equal(2, gate.GetCounters().Running);
        first.Dispose();
        using var admitted = await third;
        second.Dispose();
        var counters = gate.GetCounters();
        Assert.Equal(2, counters.PeakRunning);
        Assert.Equal(1, counters.Waited);
        Assert.Equal(3, counters.Admitted);
    }

    [Fact]
    public async Task Enter_OverThePixelBudget_WaitsForPixelsEvenWithFreeSlots_AndALoneLargeImageIsAdmitted()
    {
        var gate = Gate(new AdmissionOptions { MaxConcurrency = 4, MaxPixelsInFlight = 100, MaxWait = TimeSpan.FromMinutes(5) });

        var first = await gate.EnterAsync(60, waitAsLongAsNeeded: false, CancellationToken.None);
        var second = gate.EnterAsync(60, waitAsLongAsNeeded: false, CancellationToken.None);

        Assert.False(second.IsCompleted);
        first.Dispose();
        (await second).Dispose();
        using var alone = await gate.EnterAsync(500, waitAsLongAsNeeded: false, CancellationToken.None);
        Assert.Equal(500, gate.GetCounters().PixelsInFlight);
        Assert.Equal(500, gate.GetCounters().PeakPixelsInFlight);
    }

    [Fact]
    public async Task Enter_WaitingQueueFull_TurnedAwayAtOnceWithRetryDelay_UnlessItWaitsAsLongAsNeeded()
    {
        var gate = Gate(new AdmissionOptions { MaxConcurrency = 1, MaxWaiting = 1, MaxWait = TimeSpan.FromMinutes(5), RetryAfter = TimeSpan.FromMilliseconds(750) });
        using var running = await gate.EnterAsync(1, waitAsLongAsNeeded: false, CancellationToken.None);
        var waiting = gate.EnterAsync(1, waitAsLongAsNeeded: false, CancellationToken.None);

        var refused = await Assert.ThrowsAsync<SegmentationException>(() => gate.EnterAsync(1, waitAsLongAsNeeded: false, CancellationToken.None));
        var patient = gate.EnterAsync(1, waitAsLongAsNeeded: true, CancellationToken.None);

        Assert.Equal(SegmentationErrorKind.QueueFull, refused.Kind);
        Assert.Equal(TimeSpan.FromMilliseconds(750), refused.RetryAfter);
        Assert.False(waiting.IsCompleted);
        Assert.False(patient.IsCompleted);
        Assert.Equal(1, gate.GetCounters().Rejected);
        Assert.Equal(2, gate.GetCounters().Waiting);
        running.Dispose();
        (await waiting).Dispose();
        (await patient).Dispose();
        Assert.Equal(0, gate.GetCounters().Running);
    }

    [Fact]
    public async Task Enter_NoWaitAllowed_TurnedAwayInsteadOfWaiting()
    {
        var gate = Gate(new AdmissionOptions { MaxConcurrency = 1, MaxWait = TimeSpan.Zero });
        using var running = await gate.EnterAsync(1, waitAsLongAsNeeded: false, CancellationToken.None);

        var refused = await Assert.ThrowsAsync<SegmentationException>(() => gate.EnterAsync(1, waitAsLongAsNeeded: false, CancellationToken.None));

        Assert.Equal(SegmentationErrorKind.QueueFull, refused.Kind);
        Assert.NotNull(refused.RetryAfter);
    }

    [Fact]
    public async Task Enter_WaitRunsOut_TurnedAwayWithRetryDelay_AndLeavesTheQueue()
    {
        var clock = new ManualClock();
        var gate = new AdmissionGate(Options.Create(new AdmissionOptions { MaxConcurrency = 1, MaxWait = TimeSpan.FromSeconds(2) }), clock);
        using var running = await gate.EnterAsync(1, waitAsLongAsNeeded: false, CancellationToken.None);
        var waiting = gate.EnterAsync(1, waitAsLongAsNeeded: false, CancellationToken.None);
        var patient = gate.EnterAsync(1, waitAsLongAsNeeded: true, CancellationToken.None);

        clock.FireAll();

        var refused = await Assert.ThrowsAsync<SegmentationException>(() => waiting);
        Assert.Equal(SegmentationErrorKind.QueueFull, refused.Kind);
        Assert.NotNull(refused.RetryAfter);
        Assert.False(patient.IsCompleted);
        Assert.Equal(1, gate.GetCounters().Rejected);
        Assert.Equal(1, gate.GetCounters().Waiting);
        running.Dispose();
        (await patient).Dispose();
    }

    [Fact]
    public async Task Resume_AfterTheModelRun_GoesAheadOfNewRequests()
    {
        var gate = Gate(new AdmissionOptions { MaxConcurrency = 1, MaxWait = TimeSpan.FromMinutes(5) });
        using var postprocessing = await gate.EnterAsync(10, waitAsLongAsNeeded: false, CancellationToken.None);
        postprocessing.LeaveSlot();
        var decoding = await gate.EnterAsync(10, waitAsLongAsNeeded: false, CancellationToken.None);
        var newcomer = gate.EnterAsync(10, waitAsLongAsNeeded: false, CancellationToken.None);
        var resume = postprocessing.ResumeAsync(CancellationToken.None);

        decoding.Dispose();

        await resume;
        Assert.False(newcomer.IsCompleted);
        Assert.Equal(1, gate.GetCounters().Running);
        postprocessing.Dispose();
        (await newcomer).Dispose();
        Assert.Equal(1, gate.GetCounters().PeakRunning);
        Assert.Equal(0, gate.GetCounters().PixelsInFlight);
    }

    [Fact]
    public async Task Enter_CallerCancelsWhileWaiting_LeavesTheQueueAndTheNextIsAdmitted()
    {
        var gate = Gate(new AdmissionOptions { MaxConcurrency = 1, MaxWait = TimeSpan.FromMinutes(5) });
        var running = await gate.EnterAsync(1, waitAsLongAsNeeded: false, CancellationToken.None);
        using var cancellation = new CancellationTokenSource();
        var cancelled = gate.EnterAsync(1, waitAsLongAsNeeded: false, cancellation.Token);
        var next = gate.EnterAsync(1, waitAsLongAsNeeded: false, CancellationToken.None);

        await cancellation.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.Equal(1, gate.GetCounters().Waiting);
        running.Dispose();
        (await next).Dispose();
        Assert.Equal(0, gate.GetCounters().Rejected);
        Assert.Equal(0, gate.GetCounters().Running);
    }

    private static AdmissionGate Gate(AdmissionOptions options) => new(Options.Create(options));

    /// <summary>A clock whose timers fire only when told: a wait runs out without the test waiting.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private readonly List<Timer> _timers = [];

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            var timer = new Timer(callback, state);
            lock (_timers)
            {
                _timers.Add(timer);
            }

            return timer;
        }

        public void FireAll()
        {
            Timer[] timers;
            lock (_timers)
            {
                timers = [.. _timers];
            }

            foreach (var timer in timers)
            {
                timer.Fire();
            }
        }

        private sealed class Timer(TimerCallback callback, object? state) : ITimer
        {
            private bool _disposed;

            public void Fire()
            {
                if (!_disposed)
                {
                    callback(state);
                }
            }

            public bool Change(TimeSpan dueTime, TimeSpan period) => !_disposed;

            public void Dispose() => _disposed = true;

            public ValueTask DisposeAsync()
            {
                Dispose();
                return ValueTask.CompletedTask;
            }
        }
    }
}
