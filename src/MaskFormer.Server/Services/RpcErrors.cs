using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;

namespace MaskFormer.Server.Services;

/// <summary>
/// Turns engine errors into gRPC statuses with google.rpc details: BadRequest naming the field at
/// fault, RetryInfo when the queue is full.
/// </summary>
internal static class RpcErrors
{
    public static RpcException InvalidArgument(string field, string message) =>
        ToRpcException(new SegmentationException(SegmentationErrorKind.InvalidArgument, message) { Field = field });

    /// <summary>
    /// RESOURCE_EXHAUSTED for a call the host's own limits turn away (call count, request bytes), with
    /// RetryInfo when sending it again later may succeed.
    /// </summary>
    public static RpcException Overloaded(string message, TimeSpan? retryAfter = null) =>
        ToRpcException(new SegmentationException(SegmentationErrorKind.QueueFull, message) { RetryAfter = retryAfter });

    /// <summary>UNAVAILABLE while draining: the client should reconnect (to another instance).</summary>
    public static RpcException ShuttingDown(string message) => new(new Grpc.Core.Status(StatusCode.Unavailable, message));

    public static RpcException ToRpcException(SegmentationException exception) => ToStatus(exception).ToRpcException();

    /// <summary>A stream frame's error: the code, message and details the unary call's status would have.</summary>
    public static FrameError ToFrameError(SegmentationException exception)
    {
        var status = ToStatus(exception);
        var error = new FrameError { Code = status.Code, Message = status.Message };
        if (status.Details.Count > 0)
        {
            error.StatusDetails = status.ToByteString();
        }

        return error;
    }

    private static Google.Rpc.Status ToStatus(SegmentationException exception)
    {
        var code = ToCode(exception.Kind);
        var status = new Google.Rpc.Status { Code = (int)code, Message = exception.Message };
        if (exception.Field is { } field && code == Code.InvalidArgument)
        {
            status.Details.Add(Any.Pack(new BadRequest
            {
                FieldViolations = { new BadRequest.Types.FieldViolation { Field = field, Description = exception.Message } },
            }));
        }

        if (exception.RetryAfter is { } retryAfter)
        {
            status.Details.Add(Any.Pack(new RetryInfo { RetryDelay = Duration.FromTimeSpan(retryAfter) }));
        }

        return status;
    }

    public static Code ToCode(SegmentationErrorKind kind) => kind switch
    {
        SegmentationErrorKind.InvalidArgument => Code.InvalidArgument,
        SegmentationErrorKind.ModelNotFound => Code.NotFound,
        SegmentationErrorKind.Unimplemented => Code.Unimplemented,
        SegmentationErrorKind.QueueFull => Code.ResourceExhausted,
        SegmentationErrorKind.DeadlineExceeded => Code.DeadlineExceeded,
        SegmentationErrorKind.Unavailable => Code.Unavailable,
        SegmentationErrorKind.ModelRunFailed => Code.Internal,
        _ => Code.Internal,
    };
}
