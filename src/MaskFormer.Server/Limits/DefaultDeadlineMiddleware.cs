using Grpc.AspNetCore.Server;
using Grpc.Core;
using MaskFormer.Server.Hosting;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Limits;

/// <summary>
/// Gives a unary call that arrives without a deadline the server's default, by adding the grpc-timeout
/// header before gRPC reads it: gRPC itself then cancels the call and answers DEADLINE_EXCEEDED, and the
/// engine drops it from its queue, exactly as for a client's own deadline. Streams keep none: a video
/// stream lives as long as the video.
/// </summary>
internal static class DefaultDeadlineMiddleware
{
    private const string TimeoutHeader = "grpc-timeout";

    public static IApplicationBuilder UseMaskFormerDefaultDeadline(this IApplicationBuilder app)
    {
        var deadline = app.ApplicationServices.GetRequiredService<IOptions<GrpcServerOptions>>().Value.DefaultDeadline;
        if (deadline <= TimeSpan.Zero)
        {
            return app;
        }

        // grpc-timeout is at most 8 digits and a unit; milliseconds reach 27 hours.
        var header = $"{(long)Math.Ceiling(deadline.TotalMilliseconds)}m";
        return app.Use((context, next) =>
        {
            if (context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method.Type is MethodType.Unary or MethodType.ServerStreaming
                && !context.Request.Headers.ContainsKey(TimeoutHeader))
            {
                context.Request.Headers[TimeoutHeader] = header;
            }

            return next(context);
        });
    }
}
