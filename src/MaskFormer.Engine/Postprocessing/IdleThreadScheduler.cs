using System.Collections.Concurrent;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Threads of the engine's own in Linux's <c>SCHED_IDLE</c> policy, one per core, that run post-processing
/// (<see cref="InferenceOptions.IdlePostprocessing"/>). A request thread lowered by a nice value
/// (<see cref="ModelThreadPriority"/>) still takes a share of a busy core, and a model thread that wakes
/// after an operator's barrier may wait out its time slice; a normal thread that wakes preempts a
/// <c>SCHED_IDLE</c> one at once, so post-processing runs only in the model's gaps. Only post-processing,
/// the bulk of the request work, runs here: the thread pool keeps gRPC I/O and health checks, which must
/// answer while the model fills the cores, at the nice value. One set per process, like the priorities.
/// </summary>
/// <remarks>
/// A pass's parallel loops stay on these threads (<see cref="RowParallelism"/> hands out options with this
/// scheduler on them), and a task waited on from one of them runs inline if no thread has started it, so a
/// loop never waits on work queued behind itself. The caller waits synchronously, as it did while it
/// post-processed itself: its thread is held either way, and no continuation is queued to the thread pool
/// from here, so no pool thread is created by (and inherits the policy of) one of these threads.
/// </remarks>
internal sealed partial class IdleThreadScheduler : TaskScheduler, IDisposable
{
    private static readonly Lock s_gate = new();
    private static IdleThreadScheduler? s_shared;

    [ThreadStatic]
    private static IdleThreadScheduler? s_owner;

    private readonly BlockingCollection<Task> _tasks = [];
    private readonly ILogger _logger;
    private int _failureLogged;

    internal IdleThreadScheduler(int threads, ILogger logger)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        _logger = logger;
        MaximumConcurrencyLevel = threads;
        OptionsByDegree = RowParallelism.OptionsByDegree(threads, this);
        Unbounded = new ParallelOptions { TaskScheduler = this };
        for (var i = 0; i < threads; i++)
        {
            new Thread(Work) { IsBackground = true, Name = $"maskformer-post-{i}" }.Start();
        }
    }

    /// <summary>The scheduler whose thread this is; null on any other thread.</summary>
    public static IdleThreadScheduler? OfCurrentThread => s_owner;

    public override int MaximumConcurrencyLevel { get; }

    /// <summary>Loop options on these threads, by the most threads a loop may use (1 to <see cref="MaximumConcurrencyLevel"/>).</summary>
    public ParallelOptions[] OptionsByDegree { get; }

    /// <summary>Loop options on these threads, with no limit of their own.</summary>
    public ParallelOptions Unbounded { get; }

    /// <summary>The process's post-processing threads, one per core, started the first time they are asked for.</summary>
    public static IdleThreadScheduler Shared(ILogger logger)
    {
        lock (s_gate)
        {
            return s_shared ??= new IdleThreadScheduler(Environment.ProcessorCount, logger);
        }
    }

    /// <summary>Runs <paramref name="work"/> on one of these threads and waits for it; its exception, if any, is rethrown as it was.</summary>
    public T Run<T>(Func<T> work) =>
        Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.DenyChildAttach, this).GetAwaiter().GetResult();

    /// <summary>Lets the threads end once the queue is empty (for a scheduler of a test's own; the shared one stays).</summary>
    public void Dispose() => _tasks.CompleteAdding();

    protected override void QueueTask(Task task) => _tasks.Add(task);

    // TryExecuteTask runs a task once: a queued task run here is skipped when a thread dequeues it.
    protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) => s_owner == this && TryExecuteTask(task);

    protected override IEnumerable<Task> GetScheduledTasks() => _tasks.ToArray();

    private void Work()
    {
        s_owner = this;
        string? failure;
        try
        {
            failure = ModelThreadPriority.SetCurrentThreadIdle() is var errno && errno != 0 ? $"errno {errno}" : null;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            // A C library without these calls (not glibc): the request threads are not lowered either.
            failure = ex.Message;
        }

        if (failure is not null)
        {
            // Then at least as low as the request threads.
            _ = ModelThreadPriority.LowerToRequestNice();
            if (Interlocked.Exchange(ref _failureLogged, 1) == 0)
            {
                LogIdleFailed(_logger, failure);
            }
        }

        foreach (var task in _tasks.GetConsumingEnumerable())
        {
            TryExecuteTask(task);
        }
    }

    [LoggerMessage(EventId = 32, Level = LogLevel.Warning, Message = "Post-processing threads could not take the SCHED_IDLE policy ({Reason}); they run at the request threads' nice value instead (MaskFormer:Inference:IdlePostprocessing)")]
    private static partial void LogIdleFailed(ILogger logger, string reason);
}
