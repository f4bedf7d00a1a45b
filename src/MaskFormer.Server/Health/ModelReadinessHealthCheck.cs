using MaskFormer.Engine;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace MaskFormer.Server.Health;

/// <summary>Healthy only once every model is loaded and warmed up, so health reports NOT_SERVING until then.</summary>
internal sealed class ModelReadinessHealthCheck(SegmentationEngine engine) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(engine.IsReady
            ? HealthCheckResult.Healthy($"{engine.Models.Count} model(s) serving")
            : HealthCheckResult.Unhealthy("models are loading or warming up"));
}
