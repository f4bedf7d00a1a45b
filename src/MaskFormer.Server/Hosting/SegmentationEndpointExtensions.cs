using MaskFormer.Server.Health;
using MaskFormer.Server.Services;
using MaskFormer.Server.Streaming;

namespace MaskFormer.Server.Hosting;

/// <summary>Registers and maps the gRPC surface: SegmentationService, grpc.health.v1 and reflection.</summary>
public static class SegmentationEndpointExtensions
{
    /// <summary>The health-check tag for checks that gate readiness.</summary>
    public const string ReadyTag = "ready";

    /// <summary>Adds gRPC with the configured message limits, health checks and reflection.</summary>
    public static IServiceCollection AddMaskFormerGrpc(this IServiceCollection services, IConfiguration configuration)
    {
        var limits = configuration.GetSection(GrpcServerOptions.SectionName).Get<GrpcServerOptions>() ?? new GrpcServerOptions();
        services.AddGrpc(options =>
        {
            options.MaxReceiveMessageSize = limits.MaxReceiveMessageSize;
            options.MaxSendMessageSize = limits.MaxSendMessageSize;
            options.EnableDetailedErrors = false;
        });
        services.AddGrpcReflection();
        services.AddOptions<StreamingOptions>().BindConfiguration(StreamingOptions.SectionName)
            .Validate(o => o.DefaultMaxInFlight >= 1 && o.MaxInFlightLimit >= o.DefaultMaxInFlight, $"{StreamingOptions.SectionName}:DefaultMaxInFlight must be at least 1 and at most MaxInFlightLimit.")
            .Validate(o => o.PendingFrames >= 1 && o.MaxUnwrittenResponses >= 1, $"{StreamingOptions.SectionName}:PendingFrames and MaxUnwrittenResponses must be at least 1.")
            .ValidateOnStart();
        services.AddGrpcHealthChecks(options =>
        {
            options.Services.Map(string.Empty, result => result.Tags.Contains(ReadyTag));
            options.Services.Map("maskformer.v1.SegmentationService", result => result.Tags.Contains(ReadyTag));
        }).AddCheck<ModelReadinessHealthCheck>("models", tags: [ReadyTag]);
        return services;
    }

    /// <summary>Maps SegmentationService, the gRPC health service and reflection.</summary>
    public static IEndpointRouteBuilder MapSegmentation(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGrpcService<SegmentationGrpcService>();
        endpoints.MapGrpcHealthChecksService();
        endpoints.MapGrpcReflectionService();
        return endpoints;
    }
}
