using Grpc.AspNetCore.Server;
using MaskFormer.Server.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Limits;

/// <summary>
/// One set of transport limits (<see cref="GrpcServerOptions"/>), validated at start-up and applied to
/// both gRPC and Kestrel, so they cannot disagree: before this, Kestrel's 30 MB default request-body
/// limit answered UNKNOWN to messages gRPC's 64 MiB limit allowed.
/// </summary>
internal static class LimitsServiceCollectionExtensions
{
    public static IServiceCollection AddMaskFormerLimits(this IServiceCollection services)
    {
        const string Section = GrpcServerOptions.SectionName;
        services.AddOptions<GrpcServerOptions>().BindConfiguration(Section)
            .Validate(o => o.MaxReceiveMessageSize is >= 1024 and <= int.MaxValue - GrpcServerOptions.MessageFrameHeader, $"{Section}:MaxReceiveMessageSize must be at least 1024 bytes.")
            .Validate(o => o.MaxRequestBytesInFlight >= o.MaxReceiveMessageSize, $"{Section}:MaxRequestBytesInFlight must be at least {Section}:MaxReceiveMessageSize, or no message of the largest size could be read.")
            .Validate(o => o.MinRequestBytesPerSecond >= 0, $"{Section}:MinRequestBytesPerSecond must be 0 (no minimum) or more.")
            .Validate(o => o.MaxSendMessageSize >= 1024, $"{Section}:MaxSendMessageSize must be at least 1024 bytes.")
            .Validate(o => o.MaxConcurrentCalls >= 1, $"{Section}:MaxConcurrentCalls must be at least 1.")
            .Validate(o => o.MaxStreamsPerConnection >= 1, $"{Section}:MaxStreamsPerConnection must be at least 1.")
            .Validate(o => o.MaxConnections >= 1, $"{Section}:MaxConnections must be at least 1.")
            .Validate(o => o.DefaultDeadline >= TimeSpan.Zero && o.DefaultDeadline <= TimeSpan.FromDays(1), $"{Section}:DefaultDeadline must be between 0 (none) and one day.")
            .ValidateOnStart();
        services.AddSingleton<CallLimit>();
        services.AddSingleton(sp => new RequestBytesBudget(sp.GetRequiredService<IOptions<GrpcServerOptions>>().Value.MaxRequestBytesInFlight));
        services.AddOptions<GrpcServiceOptions>().Configure<IOptions<GrpcServerOptions>>((grpc, limits) =>
        {
            grpc.MaxReceiveMessageSize = limits.Value.MaxReceiveMessageSize;
            grpc.MaxSendMessageSize = limits.Value.MaxSendMessageSize;
        });
        services.AddOptions<KestrelServerOptions>().Configure<IOptions<GrpcServerOptions>>((kestrel, limits) =>
        {
            // gRPC lifts this limit itself for client and duplex streams, whose bodies last as long as the stream.
            kestrel.Limits.MaxRequestBodySize = limits.Value.MaxReceiveMessageSize + GrpcServerOptions.MessageFrameHeader;
            kestrel.Limits.MaxConcurrentConnections = limits.Value.MaxConnections;
            kestrel.Limits.MaxConcurrentUpgradedConnections = limits.Value.MaxConnections;
            kestrel.Limits.Http2.MaxStreamsPerConnection = limits.Value.MaxStreamsPerConnection;

            // Room in the connection's window for every stream's own window and one more: data a stream
            // leaves unread (waiting for request-bytes room, or for its frames in flight) then never stops
            // another call on the same connection, such as the upload whose bytes it waits for. What waits
            // unread is still bounded by each stream's window.
            var http2 = kestrel.Limits.Http2;
            http2.InitialConnectionWindowSize = (int)Math.Min(int.MaxValue, (limits.Value.MaxStreamsPerConnection + 1L) * http2.InitialStreamWindowSize);
        });
        return services;
    }
}
