using Grpc.AspNetCore.Server;
using MaskFormer.Server.Hosting;
using MaskFormer.Server.Services;

namespace MaskFormer.Server.Limits;

/// <summary>
/// Counts every SegmentationService call against <see cref="CallLimit"/> when it starts, before gRPC
/// reads its request: a call beyond <see cref="GrpcServerOptions.MaxConcurrentCalls"/> is answered
/// RESOURCE_EXHAUSTED with RetryInfo at once (trailers only), so its upload is never read, buffered or
/// counted against the request-bytes budget. (Counted in an interceptor, a unary call was refused only
/// after gRPC had read its whole message.) The slot is held until the call's HTTP/2 request ends, however
/// it ends. Health and reflection are never limited here; a draining server answers UNAVAILABLE instead,
/// as its interceptor would.
/// </summary>
internal static class CallLimitMiddleware
{
    private const string ServicePrefix = "maskformer.";

    public static IApplicationBuilder UseMaskFormerCallLimit(this IApplicationBuilder app)
    {
        var limit = app.ApplicationServices.GetRequiredService<CallLimit>();
        var lifetime = app.ApplicationServices.GetRequiredService<IHostApplicationLifetime>();
        return app.Use(async (context, next) =>
        {
            var method = context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method;
            if (method is null || !method.ServiceName.StartsWith(ServicePrefix, StringComparison.Ordinal))
            {
                await next(context).ConfigureAwait(false);
                return;
            }

            if (!limit.TryEnter())
            {
                var refusal = lifetime.ApplicationStopping.IsCancellationRequested
                    ? RpcErrors.ShuttingDown(DrainingInterceptor.Message)
                    : RpcErrors.Overloaded($"The server is running its limit of {limit.Capacity} calls (MaskFormer:Grpc:MaxConcurrentCalls); retry shortly.", GrpcServerOptions.CallLimitRetryAfter);
                await TrailersOnlyAnswer.WriteAsync(context, refusal).ConfigureAwait(false);
                return;
            }

            try
            {
                await next(context).ConfigureAwait(false);
            }
            finally
            {
                limit.Exit();
            }
        });
    }
}
