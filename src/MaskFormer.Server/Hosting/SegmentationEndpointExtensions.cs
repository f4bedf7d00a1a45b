using MaskFormer.Engine.Hosting;
using MaskFormer.Server.Health;
using MaskFormer.Server.Limits;
using MaskFormer.Server.Security;
using MaskFormer.Server.Services;
using MaskFormer.Server.Streaming;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Hosting;

/// <summary>Registers and maps the gRPC surface: SegmentationService, grpc.health.v1 and reflection.</summary>
public static class SegmentationEndpointExtensions
{
    /// <summary>The health-check tag for checks that gate readiness.</summary>
    public const string ReadyTag = "ready";

    /// <summary>The health-check tag for liveness: the process is up and answering.</summary>
    public const string LiveTag = "live";

    /// <summary>
    /// The grpc.health.v1 service name for liveness (probe it for "process alive"; it stays SERVING while
    /// loading and draining). The empty name and <see cref="ReadinessService"/> report readiness.
    /// </summary>
    public const string LivenessService = "liveness";

    /// <summary>The grpc.health.v1 service name for readiness: models warm and not draining.</summary>
    public const string ReadinessService = "maskformer.v1.SegmentationService";

    /// <summary>Adds gRPC with the configured message limits, health checks and reflection.</summary>
    public static IServiceCollection AddMaskFormerGrpc(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddGrpc(options =>
        {
            options.EnableDetailedErrors = false;
            options.Interceptors.Add<DrainingInterceptor>();
        });
        services.AddMaskFormerLimits();
        services.AddMaskFormerSecurity();
        services.AddGrpcReflection();
        services.TryAddSingleton<IFrameSegmenter, EngineFrameSegmenter>();
        services.AddOptions<StreamingOptions>().BindConfiguration(StreamingOptions.SectionName)
            .Validate(o => o.DefaultMaxInFlight >= 1 && o.MaxInFlightLimit >= o.DefaultMaxInFlight, $"{StreamingOptions.SectionName}:DefaultMaxInFlight must be at least 1 and at most MaxInFlightLimit.")
            .Validate(o => o.PendingFrames >= 1 && o.MaxUnwrittenResponses >= 1, $"{StreamingOptions.SectionName}:PendingFrames and MaxUnwrittenResponses must be at least 1.")
            .Validate(o => o.MaxUnwrittenBytes is >= 1024 and <= int.MaxValue, $"{StreamingOptions.SectionName}:MaxUnwrittenBytes must be between 1024 and {int.MaxValue} bytes.")
            .Validate(o => o.DrainTimeout > TimeSpan.Zero && o.DrainTimeout <= TimeSpan.FromMinutes(10), $"{StreamingOptions.SectionName}:DrainTimeout must be more than 0 and at most 10 minutes.")
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<StreamingOptions>, TrackingDefaultsValidator>());

        // Streams drain before Kestrel stops; the host gives up only after the drain time plus a margin.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IResultWarmUp, ResponseWarmUp>());
        services.TryAddSingleton<OpenStreams>();
        services.TryAddSingleton<StreamBuffers>();
        services.AddHostedService(provider => provider.GetRequiredService<OpenStreams>());

        // A GOAWAY on every connection as the drain begins, so clients open their next calls elsewhere.
        services.TryAddSingleton<DrainingConnections>();
        services.AddHostedService(provider => provider.GetRequiredService<DrainingConnections>());
        services.AddOptions<KestrelServerOptions>().Configure<DrainingConnections>((kestrel, connections) =>
            kestrel.ConfigureEndpointDefaults(listen => listen.Use(connections.Track)));
        services.AddOptions<HostOptions>().Configure<IOptions<StreamingOptions>>((host, streaming) =>
            host.ShutdownTimeout = streaming.Value.DrainTimeout + StreamingOptions.ShutdownMargin);

        services.AddGrpcHealthChecks(options =>
        {
            options.Services.Map(string.Empty, result => result.Tags.Contains(ReadyTag));
            options.Services.Map(ReadinessService, result => result.Tags.Contains(ReadyTag));
            options.Services.Map(LivenessService, result => result.Tags.Contains(LiveTag));
        })
            .AddCheck<ModelReadinessHealthCheck>("models", tags: [ReadyTag])
            .AddCheck("process", () => HealthCheckResult.Healthy("answering"), tags: [LiveTag]);
        return services;
    }

    /// <summary>
    /// Marks each connection's first request for <see cref="DrainingConnections"/>; first in the pipeline,
    /// so that every request counts (probes and metrics too).
    /// </summary>
    public static IApplicationBuilder UseMaskFormerDrainingConnections(this IApplicationBuilder app)
    {
        var connections = app.ApplicationServices.GetRequiredService<DrainingConnections>();
        return app.Use((context, next) =>
        {
            connections.RequestStarted(context.Connection.Id);
            return next(context);
        });
    }

    /// <summary>Maps SegmentationService, the gRPC health service and reflection.</summary>
    public static IEndpointRouteBuilder MapSegmentation(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGrpcService<SegmentationGrpcService>();
        endpoints.MapGrpcHealthChecksService();
        if (endpoints.ServiceProvider.GetRequiredService<IOptions<SecurityOptions>>().Value.Reflection != EndpointAccess.Off)
        {
            endpoints.MapGrpcReflectionService();
        }

        return endpoints;
    }
}
