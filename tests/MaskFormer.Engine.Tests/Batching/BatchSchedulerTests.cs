using MaskFormer.Engine.Admission;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Tests.Batching;

public sealed class BatchSchedulerTests
{
    [Fact]
    public async Task SegmentAsync_TwoCpuDevicesTwoSessionsEach_64ConcurrentAnswersEqualSingleAnswers()
    {
        await using var engine = await EngineFactory.StartAsync(new InferenceOptions
        {
            Devices = [new DeviceOptions { Name = "cpu", Sessions = 2 }, new DeviceOptions { Name = "cpu", Sessions = 2 }],
            IntraOpThreads = 1,
            MaxBatchSize = 8,
            MaxQueueDelay = TimeSpan.FromMilliseconds(20),
            MaxQueueSize = 128,
        }, admission: EveryoneAdmitted);
        var images = Enumerable.Range(0, 4).Select(EngineFactory.HeldOutImage).ToArray();
        var expected = new List<ushort[]>();
        foreach (var image in images)
        {
            using var single = await engine.SegmentAsync(new SegmentationRequest { Image = image }, CancellationToken.None);
            expected.Add(single.Semantic!.Values.ToArray());
        }

        var results = await Task.WhenAll(Enumerable.Range(0, 64).Select(async i =>
        {
            using var result = await engine.SegmentAsync(new SegmentationRequest { Image = images[i % images.Length] }, CancellationToken.None);
            return (Index: i, Labels: result.Semantic!.Values.ToArray(), result.Timings.BatchSize);
        }));

        foreach (var (index, labels, _) in results)
        {
            Assert.Equal(expected[index % images.Length], labels);
        }

        var counters = engine.Models[0].GetCounters();
        Assert.True(counters.LargestBatch > 1, $"no batch larger than 1 under 64 concurrent requests: {string.Join(",", counters.BatchSizeCounts)}");
        Assert.Contains(results, r => r.BatchSize > 1);
        Assert.Equal(0, counters.Queued);
        Assert.Equal(0, counters.InFlight);
    }

    [Fact]
    public async Task SegmentAsync_QueueFull_RejectedAtOnceWithRetryHint()
    {
        // The model run is paused with one request in it, so two more wait in the queue and every other
        // is refused at once, however fast this machine is; every request is admitted (the queue is under test).
        var sessions = new FaultInjectingSessionFactory();
        await using var engine = await EngineFactory.StartAsync(new InferenceOptions { MaxBatchSize = 1, MaxQueueSize = 2, MaxQueueDelay = TimeSpan.Zero, QueueFullRetryAfter = TimeSpan.FromMilliseconds(250) }, admission: EveryoneAdmitted, sessions: sessions);
        var session = Assert.Single(sessions.Created);
        var image = EngineFactory.HeldOutImage(0);
        var completedBefore = engine.Models[0].GetCounters().Completed;
        SegmentationException?[] outcomes;
        session.Pause();
        try
        {
            var running = CallAsync();
            await Poll.UntilAsync(() => session.PausedRuns == 1, "the first request's model run did not start");
            var calls = Enumerable.Range(0, 39).Select(_ => CallAsync()).ToArray();
            await Poll.UntilAsync(() => engine.Models[0].GetCounters().Rejected == 37, "37 requests were not refused while one ran and two were queued");
            session.Resume();
            outcomes = [await running, .. await Task.WhenAll(calls)];
        }
        finally
        {
            session.Resume();
        }

        var rejections = outcomes.Where(o => o is not null).ToArray();
        Assert.Equal(37, rejections.Length);
        Assert.All(rejections, r =>
        {
            Assert.Equal(SegmentationErrorKind.QueueFull, r!.Kind);
            Assert.Equal(TimeSpan.FromMilliseconds(250), r.RetryAfter);
        });
        var counters = engine.Models[0].GetCounters();
        Assert.Equal(37, counters.Rejected);
        Assert.Equal(3, counters.Completed - completedBefore);
        Assert.Equal(0, counters.Queued);

        async Task<SegmentationException?> CallAsync()
        {
            try
            {
                using var result = await engine.SegmentAsync(new SegmentationRequest { Image = image }, CancellationToken.None);
                return null;
            }
            catch (SegmentationException ex)
            {
                return ex;
            }
        }
    }

    [Fact]
    public async Task SegmentAsync_WaitingForRoomWithADeadline400DaysAway_WaitsAndIsServed()
    {
        // One request in the paused model run and one queued fill a queue of one; a stream frame (which waits
        // for room) whose deadline is further away than one timer can wait must wait, not fail.
        var sessions = new FaultInjectingSessionFactory();
        await using var engine = await EngineFactory.StartAsync(new InferenceOptions { MaxBatchSize = 1, MaxQueueSize = 1, MaxQueueDelay = TimeSpan.Zero }, admission: EveryoneAdmitted, sessions: sessions);
        var session = Assert.Single(sessions.Created);
        var image = EngineFactory.HeldOutImage(0);
        session.Pause();
        try
        {
            var running = engine.SegmentAsync(new SegmentationRequest { Image = image }, CancellationToken.None);
            await Poll.UntilAsync(() => session.PausedRuns == 1, "the first request's model run did not start");
            var queued = engine.SegmentAsync(new SegmentationRequest { Image = image }, CancellationToken.None);
            await Poll.UntilAsync(() => engine.Models[0].GetCounters().Queued == 1, "the second request was not queued");
            var waiting = engine.SegmentAsync(new SegmentationRequest { Image = image, WaitForCapacity = true, Deadline = DateTimeOffset.UtcNow.AddDays(400) }, CancellationToken.None);
            await Poll.UntilAsync(() => engine.Models[0].GetCounters().WaitedForRoom == 1 || waiting.IsCompleted, "the third request did not wait for room");

            Assert.False(waiting.IsCompleted, waiting.Exception?.InnerException?.ToString());
            session.Resume();
            foreach (var result in await Task.WhenAll(running, queued, waiting))
            {
                Assert.NotNull(result.Semantic);
                result.Dispose();
            }
        }
        finally
        {
            session.Resume();
        }
    }

    [Fact]
    public async Task SegmentAsync_DeadlinePassesWhileQueued_DroppedBeforeInference()
    {
        // The scheduler's queue is under test, not admission control: every request is admitted at once.
        await using var engine = await EngineFactory.StartAsync(new InferenceOptions { MaxBatchSize = 1, MaxQueueSize = 256, MaxQueueDelay = TimeSpan.Zero }, admission: EveryoneAdmitted);
        var image = EngineFactory.HeldOutRawFrame(0);
        var before = engine.Models[0].GetCounters().Completed;

        // A backlog of patient requests, then impatient ones that cannot be reached in time.
        var patient = Enumerable.Range(0, 30).Select(_ => RunAsync(engine, image, deadline: null)).ToArray();
        var impatient = Enumerable.Range(0, 10).Select(_ => RunAsync(engine, image, deadline: TimeSpan.FromMilliseconds(5))).ToArray();
        var patientOutcomes = await Task.WhenAll(patient);
        var impatientOutcomes = await Task.WhenAll(impatient);

        Assert.All(patientOutcomes, Assert.Null);
        var expired = impatientOutcomes.Count(o => o is SegmentationException { Kind: SegmentationErrorKind.DeadlineExceeded });

        // An expired request never ran. The deadline's timer may also fire a hair before the deadline
        // itself, and a request its token cancels leaves as cancelled: in the queue (counted there, never
        // run), before it (the stages before the queue outlasting 5 ms on a busy machine), or after its
        // model run (reached in time on a quick one; counted as completed). CI runs saw both of the
        // latter: one cancelled outcome with none counted, and one more completed run than successes.
        var cancelled = impatientOutcomes.Count(o => o is OperationCanceledException);
        var succeeded = impatientOutcomes.Count(o => o is null);
        Assert.True(expired > 0, "no queued request expired");
        var counters = engine.Models[0].GetCounters();
        Assert.Equal(expired, counters.Expired);
        Assert.InRange(counters.Cancelled, 0, cancelled);
        Assert.InRange(counters.Completed, before + 30 + succeeded, before + 30 + succeeded + (cancelled - counters.Cancelled));
        Assert.Equal(0, counters.Queued);
    }

    [Fact]
    public async Task SegmentAsync_CallerCancelsWhileQueued_LeavesTheQueue()
    {
        // The scheduler's queue is under test, not admission control: every request is admitted at once.
        await using var engine = await EngineFactory.StartAsync(new InferenceOptions { MaxBatchSize = 1, MaxQueueSize = 256, MaxQueueDelay = TimeSpan.Zero }, admission: EveryoneAdmitted);
        var image = EngineFactory.HeldOutRawFrame(0);
        using var cancellation = new CancellationTokenSource();

        // Queued from a thread at the session's priority: a thread-pool thread that has run a request is
        // lowered below the session, which could then drain the backlog before the last ten are queued.
        Task<Exception?>[] backlog = [], cancelled = [];
        var caller = new Thread(() =>
        {
            backlog = [.. Enumerable.Range(0, 30).Select(_ => RunAsync(engine, image, deadline: null))];
            cancelled = [.. Enumerable.Range(0, 10).Select(_ => RunAsync(engine, image, deadline: null, cancellation.Token))];

            // Cancel inline, as Kestrel does for an aborted call; CancelAsync would queue the callbacks behind
            // the thread pool's post-processing work while the session drains the queue.
            cancellation.Cancel();
        });
        ModelThreadPriority.Start(caller);
        caller.Join();
        var cancelledOutcomes = await Task.WhenAll(cancelled);
        await Task.WhenAll(backlog);

        var leftQueue = cancelledOutcomes.Count(o => o is OperationCanceledException);
        Assert.True(leftQueue > 0, $"no cancelled request left the queue: {string.Join(", ", cancelledOutcomes.Select(o => o?.GetType().Name ?? "ran"))}; {engine.Models[0].GetCounters()}");
        var counters = engine.Models[0].GetCounters();
        Assert.Equal(leftQueue, counters.Cancelled);
        Assert.Equal(0, counters.Queued);
        Assert.Equal(0, counters.InFlight);
    }

    [Fact]
    public async Task RunAsync_PlaceReservedAsTheSchedulerStops_AnsweredUnavailableNotLeftInTheQueue()
    {
        // The caller is held between reserving its place and queueing (a real race, made certain here by
        // a clock that stops that thread) while the scheduler stops and sweeps its queue for the last time.
        using var time = new PausingTimeProvider();
        var engine = await EngineFactory.StartAsync(new InferenceOptions { MaxBatchSize = 1 }, time: time, admission: EveryoneAdmitted);
        var scheduler = engine.Models[0].Scheduler;
        var input = scheduler.WarmUpInputs!(1)[0];
        var call = Task.Run(() =>
        {
            time.PauseNextTimestampOnThisThread();
            return scheduler.RunAsync(input, null, CancellationToken.None);
        });
        Assert.True(time.Paused.Wait(TimeSpan.FromMinutes(1)), "the call never reached the queue");

        await scheduler.DisposeAsync();
        time.Resume();

        // The minute only guards against this test hanging, which is what the bug did.
        var error = await Assert.ThrowsAsync<SegmentationException>(() => call.WaitAsync(TimeSpan.FromMinutes(1)));
        Assert.Equal(SegmentationErrorKind.Unavailable, error.Kind);
        Assert.Equal(0, scheduler.GetCounters().Queued);
        input.Dispose();
        await engine.DisposeAsync();
    }

    [Fact]
    public async Task RunAsync_QueuedWhenTheSchedulerStops_UnavailableWithARetryDelay()
    {
        // Requests still queued when the scheduler stops are answered UNAVAILABLE with a retry delay, as those
        // that arrive after it stopped are: both mean "send it again, to another instance".
        var engine = await EngineFactory.StartAsync(new InferenceOptions { MaxBatchSize = 1 }, admission: EveryoneAdmitted);
        var scheduler = engine.Models[0].Scheduler;
        var inputs = scheduler.WarmUpInputs!(40);
        var calls = inputs.Select(input => scheduler.RunAsync(input, null, CancellationToken.None)).ToArray();

        await scheduler.DisposeAsync();

        var refused = new List<SegmentationException>();
        foreach (var call in calls)
        {
            try
            {
                (await call.WaitAsync(TimeSpan.FromMinutes(1))).Output.Dispose();
            }
            catch (SegmentationException ex) when (ex.Kind == SegmentationErrorKind.Unavailable)
            {
                refused.Add(ex);
            }
        }

        Assert.True(refused.Count > 0, "every request ran before the scheduler stopped");
        Assert.All(refused, ex => Assert.True(ex.RetryAfter > TimeSpan.Zero, $"{ex.Message} carries no retry delay"));
        foreach (var input in inputs)
        {
            input.Dispose();
        }

        await engine.DisposeAsync();
    }

    private static AdmissionOptions EveryoneAdmitted => new() { MaxConcurrency = 64 };

    // The system clock, except that the next timestamp taken on one chosen thread waits for Resume.
    private sealed class PausingTimeProvider : TimeProvider, IDisposable
    {
        private readonly ManualResetEventSlim _resume = new();
        private int _pausedThread = -1;

        public ManualResetEventSlim Paused { get; } = new();

        public void PauseNextTimestampOnThisThread() => Volatile.Write(ref _pausedThread, Environment.CurrentManagedThreadId);

        public void Resume() => _resume.Set();

        public void Dispose()
        {
            _resume.Dispose();
            Paused.Dispose();
        }

        public override long GetTimestamp()
        {
            if (Interlocked.CompareExchange(ref _pausedThread, -1, Environment.CurrentManagedThreadId) == Environment.CurrentManagedThreadId)
            {
                Paused.Set();
                _resume.Wait();
            }

            return System.GetTimestamp();
        }
    }

    private static async Task<Exception?> RunAsync(SegmentationEngine engine, ImageSource image, TimeSpan? deadline, CancellationToken cancellationToken = default)
    {
        try
        {
            // As gRPC does, the deadline both travels with the request and cancels the call.
            var request = new SegmentationRequest { Image = image, Deadline = deadline is { } d ? DateTimeOffset.UtcNow + d : null };
            using var timeout = deadline is { } limit ? new CancellationTokenSource(limit) : new CancellationTokenSource();
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
            using var result = await engine.SegmentAsync(request, linked.Token);
            return null;
        }
        catch (Exception ex) when (ex is SegmentationException or OperationCanceledException)
        {
            return ex;
        }
    }
}
