using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Engine.Sessions;

/// <summary>
/// Keeps the model's threads ahead of request work on the same cores (Linux). A thread-pool thread that
/// decodes, pre-processes or post-processes a request (and then encodes it and serves gRPC) lowers its
/// own priority (raises its nice value by <see cref="InferenceOptions.RequestThreadNice"/>) the first
/// time it does, so when the cores are short
/// the kernel runs the session workers and ONNX Runtime's intra-op threads first and the request work in
/// the gaps between the model's operators and batches, instead of stretching every model run. Only the
/// model run is serial; the request work of many images can wait a little without costing throughput.
/// A thread inherits its creator's nice value and an unprivileged process cannot lower it again, so session
/// workers started after start-up (replacing a hung session) are started by a thread kept at the process's
/// priority. Nice values are per thread and per process, hence one static state.
/// </summary>
internal static partial class ModelThreadPriority
{
    private const int PrioProcess = 0;
    private const int HighestNice = 19;
    private const int SchedIdle = 5;

    private static readonly Lock s_gate = new();

    // The nice value request threads take; int.MinValue while off.
    private static int s_requestNice = int.MinValue;
    private static BlockingCollection<(Thread Thread, TaskCompletionSource Started)>? s_starts;
    private static ILogger? s_logger;
    private static int s_failureLogged;

    [ThreadStatic]
    private static bool s_threadLowered;

    /// <summary>
    /// Request threads will run <paramref name="increment"/> nice levels below the process's (0: not
    /// lowered); called on the thread that loads the models, before any session is created. The first call
    /// that lowers starts the thread that later session workers are started by, at this thread's priority.
    /// </summary>
    public static void Configure(int increment, ILogger logger)
    {
        if (increment <= 0 || !OperatingSystem.IsLinux())
        {
            Volatile.Write(ref s_requestNice, int.MinValue);
            return;
        }

        lock (s_gate)
        {
            s_logger = logger;
            if (s_starts is null)
            {
                s_starts = [];
                var starter = new Thread(StartThreads) { IsBackground = true, Name = "maskformer-starter" };
                starter.Start(s_starts);
            }

            // Relative to the main thread's (the process's own, as it was started). A C library without
            // these calls (not glibc, or glibc before 2.30 for gettid) leaves every thread alone, as
            // NativeMemoryTrim does for its own; probed here so that no request thread meets it later.
            int processNice;
            try
            {
                processNice = getpriority(PrioProcess, Environment.ProcessId);
                _ = gettid();
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
            {
                LogLowerUnavailable(logger, ex.Message);
                Volatile.Write(ref s_requestNice, int.MinValue);
                return;
            }

            Volatile.Write(ref s_requestNice, Math.Min(HighestNice, processNice + increment));
        }
    }

    /// <summary>
    /// Lowers the calling thread's priority to the configured nice value, once per thread; thread-pool
    /// threads only: a thread of the application's own that calls the engine keeps its priority (and so do
    /// the threads it creates later).
    /// </summary>
    public static void LowerCurrentThread()
    {
        var nice = Volatile.Read(ref s_requestNice);
        if (s_threadLowered || nice == int.MinValue || !Thread.CurrentThread.IsThreadPoolThread)
        {
            return;
        }

        s_threadLowered = true;
        if (SetCurrentThreadNice(nice) is var errno && errno != 0 && Interlocked.Exchange(ref s_failureLogged, 1) == 0 && s_logger is { } logger)
        {
            LogLowerFailed(logger, nice, errno);
        }
    }

    /// <summary>Sets the calling thread's nice value; 0, or the errno of the failure.</summary>
    public static int SetCurrentThreadNice(int nice) => setpriority(PrioProcess, gettid(), nice) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>Lowers the calling thread to the request threads' nice value where they are lowered; 0, or the errno of the failure.</summary>
    public static int LowerToRequestNice() => Volatile.Read(ref s_requestNice) is var nice && nice != int.MinValue ? SetCurrentThreadNice(nice) : 0;

    /// <summary>
    /// Gives the calling thread the <c>SCHED_IDLE</c> policy (sched(7): for work that should run only when
    /// nothing else wants the core; no privilege needed, none can undo it); 0, or the errno of the failure.
    /// </summary>
    public static int SetCurrentThreadIdle()
    {
        var priority = 0;
        return sched_setscheduler(gettid(), SchedIdle, ref priority) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>
    /// Starts a model thread at the process's priority: from the starter thread while request threads are
    /// lowered (the caller may be one of them), else here. Returns once the thread has started.
    /// </summary>
    public static void Start(Thread thread)
    {
        var starts = Volatile.Read(ref s_starts);
        if (starts is null || Volatile.Read(ref s_requestNice) == int.MinValue)
        {
            thread.Start();
            return;
        }

        var started = new TaskCompletionSource();
        starts.Add((thread, started));
        started.Task.GetAwaiter().GetResult();
    }

    private static void StartThreads(object? state)
    {
        foreach (var (thread, started) in ((BlockingCollection<(Thread, TaskCompletionSource)>)state!).GetConsumingEnumerable())
        {
            try
            {
                thread.Start();
                started.SetResult();
            }
            catch (Exception ex)
            {
                started.SetException(ex);
            }
        }
    }

    // As NativeMemoryTrim's import: LibraryImport would need unsafe blocks, which the build forbids.
#pragma warning disable SYSLIB1054
    [DllImport("libc.so.6", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int setpriority(int which, int who, int prio);

    [DllImport("libc.so.6")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int getpriority(int which, int who);

    [DllImport("libc.so.6")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int gettid();

    // The last parameter is struct sched_param, whose one field is the int priority (0 for SCHED_IDLE).
    [DllImport("libc.so.6", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int sched_setscheduler(int pid, int policy, ref int priority);
#pragma warning restore SYSLIB1054

    [LoggerMessage(EventId = 30, Level = LogLevel.Warning, Message = "Request threads could not be lowered to nice {Nice} (errno {Errno}); they share the cores with the model's threads equally (MaskFormer:Inference:RequestThreadNice)")]
    private static partial void LogLowerFailed(ILogger logger, int nice, int errno);

    [LoggerMessage(EventId = 31, Level = LogLevel.Warning, Message = "Request threads are not lowered: this system's C library lacks getpriority, setpriority or gettid ({Reason}); they share the cores with the model's threads equally (MaskFormer:Inference:RequestThreadNice)")]
    private static partial void LogLowerUnavailable(ILogger logger, string reason);
}
