using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Security;

/// <summary>
/// Checks "authorization: Bearer &lt;token&gt;" before any other interceptor or service code runs: a missing
/// or wrong token is UNAUTHENTICATED. Health and reflection follow <see cref="SecurityOptions.Health"/> and
/// <see cref="SecurityOptions.Reflection"/>. When TLS is configured, cleartext endpoints serve health only
/// (PERMISSION_DENIED otherwise). The token is never logged or echoed.
/// </summary>
internal sealed class AuthenticationInterceptor(TokenAuthenticator tokens, IOptions<SecurityOptions> options) : Interceptor
{
    private const string HealthPrefix = "/grpc.health.v1.";
    private const string ReflectionPrefix = "/grpc.reflection.";
    private const string Scheme = "Bearer ";
    private readonly SecurityOptions _options = options.Value;

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Authenticate(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authenticate(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authenticate(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authenticate(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Authenticate(ServerCallContext context)
    {
        // With TLS on, a cleartext endpoint exists only for probes that cannot speak TLS (kubelet).
        if (_options.TlsConfigured && !context.GetHttpContext().Request.IsHttps && !context.Method.StartsWith(HealthPrefix, StringComparison.Ordinal))
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, "This endpoint is cleartext and serves grpc.health.v1 only; call the TLS endpoint."));
        }

        if (!tokens.Enabled || IsOpen(context.Method))
        {
            return;
        }

        var header = context.RequestHeaders.GetValue("authorization");
        if (header is null || !header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, "This server needs an \"authorization: Bearer <token>\" header."));
        }

        if (!tokens.IsValid(header[Scheme.Length..].Trim()))
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, "The bearer token is not valid."));
        }
    }

    private bool IsOpen(string method) =>
        method.StartsWith(HealthPrefix, StringComparison.Ordinal) ? _options.Health == EndpointAccess.Open
        : method.StartsWith(ReflectionPrefix, StringComparison.Ordinal) && _options.Reflection == EndpointAccess.Open;
}
