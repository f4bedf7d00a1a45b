using MaskFormer.Engine;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace MaskFormer.Server.Health;

/// <summary>
/// Readiness: healthy only once every model is loaded and warmed up, and no longer once the host starts
/// stopping, so health reports NOT_SERVING while loading and from the first moment of a drain.
/// </summary>
internal sealed class ModelReadinessHealthCheck(SegmentationEngine engine, IHostApplicationLifetime lifetime) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(
            lifetime.ApplicationStopping.IsCancellationRequested ? HealthCheckResult.Unhealthy("draining: the server is shutting down")
            : engine.IsReady ? HealthCheckResult.Healthy($"{engine.Models.Count} model(s) serving")
            : HealthCheckResult.Unhealthy("models are loading or warming up"));
}
