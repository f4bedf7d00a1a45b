using Grpc.Core;
using Grpc.Core.Interceptors;
using MaskFormer.Engine;
using MaskFormer.Server.Hosting;
using MaskFormer.Server.Services;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Limits;

/// <summary>
/// How many SegmentationService calls run at once over all connections: beyond
/// <see cref="GrpcServerOptions.MaxConcurrentCalls"/> a call is answered RESOURCE_EXHAUSTED with
/// RetryInfo before its request is used. Health and reflection are never limited here.
/// Admission control for CPU and memory can be added beside the count without touching the services.
/// </summary>
internal sealed class CallLimitsInterceptor(IOptions<GrpcServerOptions> options) : Interceptor
{
    private const string ServicePrefix = "/maskformer.v1.";
    private readonly GrpcServerOptions _options = options.Value;
    private int _running;
    private long _refused;

    /// <summary>Calls to SegmentationService running now.</summary>
    public int Running => Volatile.Read(ref _running);

    /// <summary>Calls turned away at the limit since start.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        using var _ = Track(context);
        return await continuation(request, context).ConfigureAwait(false);
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        using var _ = Track(context);
        return await continuation(requestStream, context).ConfigureAwait(false);
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        using var _ = Track(context);
        await continuation(request, responseStream, context).ConfigureAwait(false);
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        using var _ = Track(context);
        await continuation(requestStream, responseStream, context).ConfigureAwait(false);
    }

    private Slot? Track(ServerCallContext context)
    {
        if (!CallMethod.Of(context).StartsWith(ServicePrefix, StringComparison.Ordinal))
        {
            return null;
        }

        if (Interlocked.Increment(ref _running) > _options.MaxConcurrentCalls)
        {
            Interlocked.Decrement(ref _running);
            Interlocked.Increment(ref _refused);
            throw RpcErrors.Overloaded($"The server is running its limit of {_options.MaxConcurrentCalls} calls; retry shortly.", GrpcServerOptions.CallLimitRetryAfter);
        }

        return new Slot(this);
    }

    private sealed class Slot(CallLimitsInterceptor owner) : IDisposable
    {
        public void Dispose() => Interlocked.Decrement(ref owner._running);
    }
}
