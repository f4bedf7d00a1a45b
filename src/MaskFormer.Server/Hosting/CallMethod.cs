using Grpc.AspNetCore.Server;
using Grpc.Core;

namespace MaskFormer.Server.Hosting;

/// <summary>
/// A call's method as the service defines it ("/package.Service/Method"). <see cref="ServerCallContext.Method"/>
/// is the request's path, whose case routing ignores: a client's "/MASKFORMER.v1.SegmentationService/..."
/// reaches the same method, and must be limited, drained and counted as it.
/// </summary>
internal static class CallMethod
{
    public static string Of(ServerCallContext context) =>
        HttpContextOf(context)?.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method.FullName ?? context.Method;

    /// <summary>The call's HTTP request; null for a call context not made by ASP.NET Core (a test's).</summary>
    public static HttpContext? HttpContextOf(ServerCallContext context)
    {
        try
        {
            return context.GetHttpContext();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }
}
