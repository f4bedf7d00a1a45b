using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging.Abstractions;

namespace MaskFormer.Testing;

/// <summary>What a <see cref="FaultInjectingSession"/> does on its next runs.</summary>
internal enum SessionFault
{
    /// <summary>Runs the real model.</summary>
    None,

    /// <summary>Throws, as a failed ONNX Runtime run does.</summary>
    Throw,

    /// <summary>Blocks until terminated, then throws, as ONNX Runtime does after RunOptions.Terminate.</summary>
    Hang,

    /// <summary>Blocks and ignores Terminate (a run stuck in native code) until the test releases it.</summary>
    HangIgnoringTerminate,

    /// <summary>
    /// Waits until the test resumes the session, then runs the real model: a model run as long as the test
    /// needs, so that queues fill for certain instead of when the machine happens to be slow.
    /// </summary>
    Pause,
}

/// <summary>
/// A FAKE, for what cannot be caused for real (a session that throws or hangs, a model run that lasts
/// until the test has filled a queue): real ONNX Runtime sessions on the committed model, wrapped so a
/// test can make one of them fail or wait. Registered in the server's container (or set on an engine)
/// in place of the real factory. Compiled into the engine and server tests, which see the engine's
/// internals (not into every test project, as the files beside this folder are).
/// </summary>
/// <param name="paddedBatchSizes">When given, each session pads its runs to these sizes, one ONNX Runtime
/// session per size, as a CUDA session does (CPU sessions never pad for real).</param>
internal sealed class FaultInjectingSessionFactory(int[]? paddedBatchSizes = null) : IModelSessionFactory
{
    private readonly SessionFactory _real = new(new InferenceOptions(), NullLogger.Instance);
    private readonly List<FaultInjectingSession> _created = [];

    /// <summary>Every session created, in order: at load, then replacements.</summary>
    public IReadOnlyList<FaultInjectingSession> Created
    {
        get
        {
            lock (_created)
            {
                return [.. _created];
            }
        }
    }

    /// <summary>The fault the next session created starts with (then back to none): a replacement that fails too.</summary>
    public SessionFault NextSessionFault { get; set; }

    public IModelSession Create(ModelFolder folder, DeviceSpec device, int intraOpThreads, bool required)
    {
        var session = new FaultInjectingSession(paddedBatchSizes is null ? _real.Create(folder, device, intraOpThreads, required) : Padded(folder, paddedBatchSizes, intraOpThreads))
        {
            Fault = NextSessionFault,
        };
        NextSessionFault = SessionFault.None;
        lock (_created)
        {
            _created.Add(session);
        }

        return session;
    }

    /// <summary>A CPU session padding its runs to <paramref name="batchSizes"/>, one ONNX Runtime session per size, as a CUDA session does.</summary>
    public static ModelSession Padded(ModelFolder folder, int[] batchSizes, int intraOpThreads)
    {
        using var options = SessionFactory.CreateCpuOptions(new InferenceOptions(), intraOpThreads, folder.Name);
        return new ModelSession([.. batchSizes.Select(_ => new Microsoft.ML.OnnxRuntime.InferenceSession(folder.ModelPath, options))], batchSizes, new SessionPlacement(DeviceSpec.Cpu, "CPUExecutionProvider", null));
    }
}

/// <summary>A FAKE wrapper of a real session (see <see cref="FaultInjectingSessionFactory"/>).</summary>
internal sealed class FaultInjectingSession(IModelSession inner) : IModelSession
{
    private readonly ManualResetEventSlim _released = new();
    private readonly ManualResetEventSlim _resumed = new();
    private readonly List<int> _runSizes = [];
    private int _pausedRuns;
    private int _failedItems;
    private int _servedItems;
    private int _terminated;
    private int _disposed;
    private int _hanging;
    private volatile SessionFault _fault;

    public SessionFault Fault
    {
        get => _fault;
        set => _fault = value;
    }

    public SessionPlacement Placement => inner.Placement;

    public IReadOnlyList<int> BatchSizes => inner.BatchSizes;

    /// <summary>Requests of the runs this session failed (thrown or hung).</summary>
    public int FailedItems => Volatile.Read(ref _failedItems);

    /// <summary>Requests this session answered with the real model since it was created (warm-up included).</summary>
    public int ServedItems => Volatile.Read(ref _servedItems);

    public bool Terminated => Volatile.Read(ref _terminated) == 1;

    public bool Disposed => Volatile.Read(ref _disposed) == 1;

    /// <summary>True while a run is blocked in a hang.</summary>
    public bool Hanging => Volatile.Read(ref _hanging) == 1;

    /// <summary>Runs waiting in <see cref="SessionFault.Pause"/>.</summary>
    public int PausedRuns => Volatile.Read(ref _pausedRuns);

    /// <summary>The number of images given to each run, in order (warm-up included).</summary>
    public IReadOnlyList<int> RunSizes
    {
        get
        {
            lock (_runSizes)
            {
                return [.. _runSizes];
            }
        }
    }

    public ModelOutput[] Run(IReadOnlyList<ModelInput> inputs)
    {
        lock (_runSizes)
        {
            _runSizes.Add(inputs.Count);
        }

        switch (Fault)
        {
            case SessionFault.Throw:
                Interlocked.Add(ref _failedItems, inputs.Count);
                throw new InvalidOperationException("Injected session failure (test fake).");
            case SessionFault.Hang or SessionFault.HangIgnoringTerminate:
                Interlocked.Add(ref _failedItems, inputs.Count);
                Volatile.Write(ref _hanging, 1);
                _released.Wait();
                Volatile.Write(ref _hanging, 0);
                throw new InvalidOperationException("Exiting due to terminate flag being set to true (test fake).");
            case SessionFault.Pause:
                Interlocked.Increment(ref _pausedRuns);
                _resumed.Wait();
                Interlocked.Decrement(ref _pausedRuns);
                goto default;
            default:
                var outputs = inner.Run(inputs);
                Interlocked.Add(ref _servedItems, inputs.Count);
                return outputs;
        }
    }

    public void Terminate()
    {
        Volatile.Write(ref _terminated, 1);
        inner.Terminate();
        if (Fault != SessionFault.HangIgnoringTerminate)
        {
            _released.Set();
        }

        // A paused run goes on to the real session, which now ends it as terminated.
        _resumed.Set();
    }

    /// <summary>Lets a run stuck in <see cref="SessionFault.HangIgnoringTerminate"/> return.</summary>
    public void Release() => _released.Set();

    /// <summary>Holds the next runs (<see cref="SessionFault.Pause"/>) until <see cref="Resume"/>.</summary>
    public void Pause()
    {
        _resumed.Reset();
        Fault = SessionFault.Pause;
    }

    /// <summary>Lets the paused runs, and every later one, run the real model.</summary>
    public void Resume()
    {
        Fault = SessionFault.None;
        _resumed.Set();
    }

    public void Dispose()
    {
        Volatile.Write(ref _disposed, 1);
        inner.Dispose();
        _released.Dispose();
        _resumed.Dispose();
    }
}
