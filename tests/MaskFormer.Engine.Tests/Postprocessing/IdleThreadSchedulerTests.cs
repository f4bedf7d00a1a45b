using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using MaskFormer.Engine.Diagnostics;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging.Abstractions;

namespace MaskFormer.Engine.Tests.Postprocessing;

/// <summary>
/// Post-processing on the engine's own SCHED_IDLE threads (Linux, read from /proc): the threads take the
/// policy, nested parallel loops on a single such thread finish (a wait runs the work queued behind it),
/// a failure reaches the caller as it was thrown, and the engine post-processes there by default and on the
/// request's thread when <see cref="InferenceOptions.IdlePostprocessing"/> is off.
/// </summary>
public sealed class IdleThreadSchedulerTests
{
    private const int SchedIdle = 5;
    private static readonly TimeSpan s_limit = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Run_ModesAndRowLoopsSideBySide_FinishOnTheseThreadsInTheIdlePolicy()
    {
        using var scheduler = new IdleThreadScheduler(2, NullLogger.Instance);
        var names = new ConcurrentBag<string?>();
        var policies = new ConcurrentBag<int>();
        var sums = new long[3];

        // As a pass does: the modes side by side, each with row loops that may use every thread, so that
        // every thread can be waiting on loop work queued behind it.
        void Mode(int m) => Parallel.For(0, 1000, RowParallelism.ForWork(long.MaxValue), i =>
        {
            names.Add(Thread.CurrentThread.Name);
            policies.Add(OwnPolicy());
            Interlocked.Add(ref sums[m], (m + 1) * i);
        });

        var total = await Task.Run(() => scheduler.Run(() =>
        {
            Parallel.Invoke(RowParallelism.ForModes(), () => Mode(0), () => Mode(1), () => Mode(2));
            return sums.Sum();
        })).WaitAsync(s_limit);

        Assert.Equal(6L * 999 * 1000 / 2, total);
        Assert.Subset(new HashSet<string?> { "maskformer-post-0", "maskformer-post-1" }, names.ToHashSet());
        Assert.Equal([SchedIdle], policies.Distinct());
    }

    [Fact]
    public async Task Run_WorkThrows_RethrowsTheSameException()
    {
        using var scheduler = new IdleThreadScheduler(2, NullLogger.Instance);
        var thrown = new InvalidOperationException("post-processing failed");

        var caught = await Assert.ThrowsAsync<InvalidOperationException>(() => Task.Run(() => scheduler.Run<int>(() => throw thrown)).WaitAsync(s_limit));

        Assert.Same(thrown, caught);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Segment_PostprocessesOnTheIdleThreadsUnlessTurnedOff(bool idle)
    {
        await using var engine = await EngineFactory.StartAsync(new InferenceOptions { IntraOpThreads = 1, IdlePostprocessing = idle });
        var names = new ConcurrentBag<string?>();
        using var parent = new Activity("test").SetIdFormat(ActivityIdFormat.W3C).Start();
        var traceId = parent.TraceId;
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == MaskFormerTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStarted = activity =>
            {
                if (activity.TraceId == traceId && activity.OperationName == EngineSpans.Postprocess)
                {
                    names.Add(Thread.CurrentThread.Name);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        var request = new SegmentationRequest { Image = EngineFactory.HeldOutImage(0), Tasks = SegmentationTasks.Semantic | SegmentationTasks.Instance | SegmentationTasks.Panoptic };

        using (var result = await engine.SegmentAsync(request, CancellationToken.None).WaitAsync(s_limit))
        {
            Assert.NotNull(result.Panoptic);
        }

        Assert.Equal(3, names.Count);
        Assert.All(names, name => Assert.Equal(idle, name?.StartsWith("maskformer-post-", StringComparison.Ordinal) == true));
    }

    // proc(5): the scheduling policy is field 41; the fields after the parenthesised name start at field 3.
    private static int OwnPolicy()
    {
        var stat = File.ReadAllText("/proc/thread-self/stat");
        return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[38], CultureInfo.InvariantCulture);
    }
}
