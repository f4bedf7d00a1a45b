using Grpc.Core;
using Grpc.Core.Interceptors;
using MaskFormer.Server.Services;

namespace MaskFormer.Server.Hosting;

/// <summary>
/// Once the host is stopping, turns every new call away with UNAVAILABLE (clients retry elsewhere),
/// except grpc.health.v1, which keeps answering so probes and balancers see NOT_SERVING. Calls already
/// running are not affected: they finish.
/// </summary>
internal sealed class DrainingInterceptor(IHostApplicationLifetime lifetime) : Interceptor
{
    private const string HealthPrefix = "/grpc.health.v1.Health/";

    /// <summary>The answer's message, also given by the call limit to a call it turns away while draining.</summary>
    public const string Message = "The server is shutting down; retry on another instance.";

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        ThrowIfDraining(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ThrowIfDraining(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ThrowIfDraining(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ThrowIfDraining(context);
        return continuation(requestStream, responseStream, context);
    }

    private void ThrowIfDraining(ServerCallContext context)
    {
        if (lifetime.ApplicationStopping.IsCancellationRequested && !CallMethod.Of(context).StartsWith(HealthPrefix, StringComparison.Ordinal))
        {
            throw RpcErrors.ShuttingDown(Message);
        }
    }
}
