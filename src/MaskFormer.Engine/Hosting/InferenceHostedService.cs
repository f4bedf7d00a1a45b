using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Engine.Hosting;

/// <summary>
/// Loads the models when the host starts (a missing or corrupt model fails start-up), warms them up
/// in the background, and stops the session workers when the host stops. When the host fails to start
/// after this service started (a port in use), StopAsync is never called: disposal then waits for the
/// warm-up, so the engine's sessions are never released under a model run still going.
/// </summary>
internal sealed partial class InferenceHostedService(SegmentationEngine engine, ILogger<InferenceHostedService> logger) : IHostedService, IAsyncDisposable, IDisposable
{
    private Task? _warmUp;
    private readonly CancellationTokenSource _stopping = new();

    public Task StartAsync(CancellationToken cancellationToken)
    {
        engine.Load();
        _warmUp = Task.Run(() => WarmUpAsync(_stopping.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await StopWarmUpAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The host's shutdown time ran out with a warm-up run still going: the sessions stay (releasing
            // them under the run could crash), and the process ends anyway.
            LogWarmUpStillRunning(logger);
            return;
        }

        await engine.DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopWarmUpAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    public void Dispose() => _stopping.Dispose();

    private async Task StopWarmUpAsync()
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync().ConfigureAwait(false);
        }

        if (_warmUp is not null)
        {
            await _warmUp.ConfigureAwait(false);
        }
    }

    private async Task WarmUpAsync(CancellationToken cancellationToken)
    {
        try
        {
            await engine.WarmUpAsync(cancellationToken).ConfigureAwait(false);
            LogReady(logger, engine.Models.Count);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            LogWarmUpFailed(logger, ex);
        }
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Inference engine ready: {Count} model(s) serving")]
    private static partial void LogReady(ILogger logger, int count);

    [LoggerMessage(EventId = 12, Level = LogLevel.Warning, Message = "The host stopped with the warm-up still running; the model sessions are not released before the process ends")]
    private static partial void LogWarmUpStillRunning(ILogger logger);

    [LoggerMessage(EventId = 11, Level = LogLevel.Critical, Message = "Warm-up failed; the service stays NOT_SERVING")]
    private static partial void LogWarmUpFailed(ILogger logger, Exception exception);
}
