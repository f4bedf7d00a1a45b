using Grpc.AspNetCore.Server;
using Grpc.Core;
using MaskFormer.Server.Hosting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Limits;

/// <summary>
/// Puts every SegmentationService call's request body behind the <see cref="RequestBytesBudget"/>
/// (<see cref="BudgetedRequestReader"/>), below gRPC, so the bytes are counted before gRPC buffers them.
/// Health and reflection are never limited here.
/// </summary>
internal static class RequestBytesMiddleware
{
    private const string ServicePrefix = "maskformer.";

    public static IApplicationBuilder UseMaskFormerRequestBytesBudget(this IApplicationBuilder app)
    {
        var budget = app.ApplicationServices.GetRequiredService<RequestBytesBudget>();
        var options = app.ApplicationServices.GetRequiredService<IOptions<GrpcServerOptions>>().Value;
        var limits = new RequestBytesLimits(options.MaxReceiveMessageSize, options.MinRequestBytesPerSecond);
        var time = app.ApplicationServices.GetService<TimeProvider>() ?? TimeProvider.System;
        return app.Use(async (context, next) =>
        {
            var method = context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method;
            if (method is null || !method.ServiceName.StartsWith(ServicePrefix, StringComparison.Ordinal))
            {
                await next(context).ConfigureAwait(false);
                return;
            }

            var unary = method.Type is MethodType.Unary or MethodType.ServerStreaming;
            var reader = new BudgetedRequestReader(context.Request.BodyReader, budget, limits, unary, time);
            context.Features.Set<IRequestBodyPipeFeature>(new BodyPipe(reader));
            try
            {
                await next(context).ConfigureAwait(false);
            }
            finally
            {
                reader.ReleaseAll();
            }
        });
    }

    private sealed class BodyPipe(BudgetedRequestReader reader) : IRequestBodyPipeFeature
    {
        public System.IO.Pipelines.PipeReader Reader => reader;
    }
}
