using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Engine.Batching;

/// <summary>
/// A slot's new session after a hung run. It runs once at each batch size it will see
/// (<see cref="WarmUpInputs"/>) before it takes traffic, because on CUDA a new session's first run of a
/// shape builds its plans. Each of those runs has a batch's run limit and watchdog: one past it is
/// terminated, its worker abandoned, and a new worker tries again after the retry pause. A warm-up run
/// that throws is logged and the session serves anyway, as a session whose run throws goes on serving.
/// </summary>
internal sealed partial class BatchScheduler
{
    // A failed creation (or a warm-up that hung) is tried again every few seconds: a pool of one must not stay empty.
    private bool CreateReplacement(Worker worker)
    {
        if (worker.PauseFirst && !PauseBeforeRetry())
        {
            return false;
        }

        while (true)
        {
            IModelSession session;
            try
            {
                session = _replace(worker.Slot);
            }
            catch (Exception ex)
            {
                LogReplacementFailed(_logger, ex, Telemetry.Name, worker.Slot);
                if (!PauseBeforeRetry())
                {
                    return false;
                }

                continue;
            }

            if (!WarmUpReplacement(worker, session))
            {
                // Its warm-up hung and this worker was abandoned (a new one serves the slot), or the
                // scheduler is stopping.
                session.Dispose();
                if (worker.Abandoned)
                {
                    LogHungRunEnded(_logger, worker.Slot);
                }

                return false;
            }

            lock (_gate)
            {
                if (_stopping)
                {
                    session.Dispose();
                    return false;
                }

                worker.Session = session;
                _sessions[worker.Slot] = session;
            }

            LogSessionReplaced(_logger, Telemetry.Name, worker.Slot);
            return true;
        }
    }

    // False when stopping. Not a wait on _gate: a pulse meant for a worker must not be spent here.
    private bool PauseBeforeRetry()
    {
        for (var waited = 0; waited < 50; waited++)
        {
            if (Volatile.Read(ref _stopping))
            {
                return false;
            }

            Thread.Sleep(100);
        }

        return !Volatile.Read(ref _stopping);
    }

    /// <summary>
    /// Runs a replacement once at each batch size it will see, each run under a batch's run limit. False
    /// when a run hung and the watchdog abandoned this worker, or when the scheduler is stopping.
    /// </summary>
    private bool WarmUpReplacement(Worker worker, IModelSession session)
    {
        if (WarmUpInputs is null)
        {
            return true;
        }

        foreach (var batchSize in WarmUpBatchSizes(session))
        {
            if (Volatile.Read(ref _stopping))
            {
                return false;
            }

            var inputs = WarmUpInputs(batchSize);
            try
            {
                if (!WarmUpRun(worker, session, inputs))
                {
                    return false;
                }
            }
            finally
            {
                foreach (var input in inputs)
                {
                    input.Dispose();
                }
            }
        }

        return true;
    }

    // False when the watchdog abandoned the run.
    private bool WarmUpRun(Worker worker, IModelSession session, ModelInput[] inputs)
    {
        var run = new RunClaim();
        var watchdog = StartWatchdog(() => OnWarmUpTimedOut(worker, session, inputs.Length, run));
        try
        {
            foreach (var output in session.Run(inputs))
            {
                output.Dispose();
            }
        }
        catch (Exception ex)
        {
            watchdog?.Dispose();
            if (!run.TryClaim())
            {
                return false;
            }

            LogWarmUpRunFailed(_logger, ex, Telemetry.Name, worker.Slot, inputs.Length);
            return true;
        }

        watchdog?.Dispose();
        return run.TryClaim();
    }

    private void OnWarmUpTimedOut(Worker worker, IModelSession session, int batchSize, RunClaim run)
    {
        if (TryTerminateHung(run, session))
        {
            LogWarmUpHung(_logger, Telemetry.Name, worker.Slot, batchSize, _options.SessionRunTimeout.TotalSeconds);
            Abandon(worker, pauseFirst: true);
        }
    }

    /// <summary>The batch sizes a session runs at to warm up: its padded sizes, else every size up to MaxBatchSize.</summary>
    internal IReadOnlyList<int> WarmUpBatchSizes(IModelSession session) =>
        session.BatchSizes.Count > 0 ? session.BatchSizes : Enumerable.Range(1, _options.MaxBatchSize).ToArray();

    [LoggerMessage(EventId = 205, Level = LogLevel.Error, Message = "Model {Model} session {Slot}: the new session's warm-up run of {BatchSize} images is past the {Timeout} s run timeout; it is terminated, and unless the scheduler is stopping another is created after the retry pause")]
    private static partial void LogWarmUpHung(ILogger logger, string model, int slot, int batchSize, double timeout);

    [LoggerMessage(EventId = 206, Level = LogLevel.Warning, Message = "Model {Model} session {Slot}: the new session's warm-up run of {BatchSize} images failed; the session serves anyway, and a run that fails again fails only its batch")]
    private static partial void LogWarmUpRunFailed(ILogger logger, Exception exception, string model, int slot, int batchSize);
}
