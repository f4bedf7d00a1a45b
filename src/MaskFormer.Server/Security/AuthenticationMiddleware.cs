using Grpc.AspNetCore.Server;
using Grpc.Core;
using MaskFormer.Server.Services;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Security;

/// <summary>
/// Checks "authorization: Bearer &lt;token&gt;" on every gRPC call before its request body is read: a
/// missing or wrong token is UNAUTHENTICATED, answered at once (trailers only), so an unauthenticated
/// caller's upload is never buffered and holds none of the request-bytes budget. Health and reflection
/// follow <see cref="SecurityOptions.Health"/> and <see cref="SecurityOptions.Reflection"/>. When TLS is
/// configured, cleartext endpoints serve health only (PERMISSION_DENIED otherwise). The token is never
/// logged or echoed.
/// </summary>
internal static class AuthenticationMiddleware
{
    private const string HealthPrefix = "/grpc.health.v1.";
    private const string ReflectionPrefix = "/grpc.reflection.";
    private const string Scheme = "Bearer ";

    public static IApplicationBuilder UseMaskFormerAuthentication(this IApplicationBuilder app)
    {
        var tokens = app.ApplicationServices.GetRequiredService<TokenAuthenticator>();
        var options = app.ApplicationServices.GetRequiredService<IOptions<SecurityOptions>>().Value;
        return app.Use(async (context, next) =>
        {
            if (context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is { } grpc
                && Refusal(context, grpc.Method.FullName, tokens, options) is { } refusal)
            {
                await TrailersOnlyAnswer.WriteAsync(context, new RpcException(new Status(refusal.Code, refusal.Message))).ConfigureAwait(false);
                return;
            }

            await next(context).ConfigureAwait(false);
        });
    }

    // The method's own name ("/package.Service/Method"), not the request path, whose case routing ignores.
    private static (StatusCode Code, string Message)? Refusal(HttpContext context, string method, TokenAuthenticator tokens, SecurityOptions options)
    {

        // With TLS on, a cleartext endpoint exists only for probes that cannot speak TLS (kubelet).
        if (options.TlsConfigured && !context.Request.IsHttps && !method.StartsWith(HealthPrefix, StringComparison.Ordinal))
        {
            return (StatusCode.PermissionDenied, "This endpoint is cleartext and serves grpc.health.v1 only; call the TLS endpoint.");
        }

        if (!tokens.Enabled || IsOpen(method, options))
        {
            return null;
        }

        var header = context.Request.Headers.Authorization.ToString();
        if (!header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return (StatusCode.Unauthenticated, "This server needs an \"authorization: Bearer <token>\" header.");
        }

        return tokens.IsValid(header[Scheme.Length..].Trim()) ? null : (StatusCode.Unauthenticated, "The bearer token is not valid.");
    }

    private static bool IsOpen(string method, SecurityOptions options) =>
        method.StartsWith(HealthPrefix, StringComparison.Ordinal) ? options.Health == EndpointAccess.Open
        : method.StartsWith(ReflectionPrefix, StringComparison.Ordinal) && options.Reflection == EndpointAccess.Open;
}
