using System.Diagnostics;
using Grpc.Core;
using Grpc.Core.Interceptors;
using MaskFormer.Engine;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Diagnostics;

/// <summary>
/// Every call's telemetry in one place: its server span, its RPC metrics, one access-log line, and the
/// error policy for logs. An unexpected exception is logged once, with its stack and the call, and
/// answered INTERNAL; a client that cancels, resets or runs out of deadline is expected behaviour and
/// logged at debug, never as an error a client could trigger at will.
/// </summary>
internal sealed partial class CallTelemetryInterceptor(
    SegmentationEngine engine,
    IOptionsMonitor<TelemetryOptions> options,
    IOptions<Grpc.AspNetCore.Server.GrpcServiceOptions> grpc,
    TimeProvider time,
    ILogger<CallTelemetryInterceptor> logger) : Interceptor
{
    // How long an IOException waits for the call's token before it counts as the server's fault.
    private static readonly TimeSpan s_abortGrace = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Counts and logs a call answered before any interceptor ran (refused for its token, the request-bytes
    /// budget, a message over the limit), from the status its HTTP/2 answer carries; calls the interceptor
    /// saw are left to it. Such a call gets its span here, without a model or tasks.
    /// </summary>
    public async Task ObserveAsync(HttpContext context, RequestDelegate next, string method)
    {
        var startedAt = time.GetTimestamp();
        var seen = new InterceptedCall();
        context.Features.Set(seen);
        var failed = false;
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch
        {
            failed = true;
            throw;
        }
        finally
        {
            if (!seen.Value)
            {
                var status = AnsweredStatus(context)
                    ?? (context.RequestAborted.IsCancellationRequested ? StatusCode.Cancelled : failed ? StatusCode.Internal : FromHttpStatus(context.Response.StatusCode));
                var duration = time.GetElapsedTime(startedAt);
                var (service, name) = CallScope.Split(method);
                var tags = CallScope.MethodTags(service, name);
                tags.Add(RpcTelemetry.RpcGrpcStatusCode, (int)status);
                RpcTelemetry.CallDuration.Record(duration.TotalSeconds, tags);
                var settings = options.CurrentValue;
                var level = CallScope.IsInfrastructureService(service) ? settings.AccessLogInfrastructureLevel : settings.AccessLogLevel;
                CallScope.RecordAnsweredEarly(context, service, name, status, AnsweredDetail(context), time.GetUtcNow() - duration, () =>
                {
                    if (status != StatusCode.OK && logger.IsEnabled(level))
                    {
                        LogCall(logger, level, method, status, duration.TotalMilliseconds, string.Empty, string.Empty, 0, 0, 0, 0);
                    }
                });
            }
        }
    }

    // A single answer gRPC will refuse to send once the interceptors return (over MaxSendMessageSize) is
    // RESOURCE_EXHAUSTED to the client, so it is counted as one, not as OK.
    private void CompleteAnswered(CallScope call, ServerCallContext context)
    {
        if (context.Status.StatusCode == StatusCode.OK && grpc.Value.MaxSendMessageSize is { } limit && call.ResponseBytes > limit)
        {
            call.Complete(StatusCode.ResourceExhausted, "The answer is larger than MaskFormer:Grpc:MaxSendMessageSize.");
            return;
        }

        call.Complete(context.Status.StatusCode, context.Status.Detail);
    }

    // An answer without a gRPC status (not a gRPC request: HTTP/1.1, a wrong content type), as gRPC
    // clients map HTTP statuses.
    private static StatusCode FromHttpStatus(int status) => status switch
    {
        400 => StatusCode.Internal,
        401 => StatusCode.Unauthenticated,
        403 => StatusCode.PermissionDenied,
        404 => StatusCode.Unimplemented,
        429 or 502 or 503 or 504 => StatusCode.Unavailable,
        _ => StatusCode.Unknown,
    };

    // The grpc-message of the answer, unescaped, where the status is (AnsweredStatus).
    private static string? AnsweredDetail(HttpContext context) =>
        context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers["grpc-message"] is { Count: > 0 } trailer ? Uri.UnescapeDataString(trailer.ToString())
        : context.Response.Headers["grpc-message"] is { Count: > 0 } header ? Uri.UnescapeDataString(header.ToString())
        : null;

    // The grpc-status of the answer: in its trailers, or in its headers when it carried no message.
    private static StatusCode? AnsweredStatus(HttpContext context)
    {
        var value = context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers["grpc-status"] is { Count: > 0 } trailer
            ? trailer.ToString()
            : context.Response.Headers["grpc-status"].ToString();
        return int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var code) ? (StatusCode)code : null;
    }

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        using var call = CallScope.Start(context, engine, time.GetTimestamp());
        call.OnRequest(request);
        try
        {
            var response = await continuation(request, context).ConfigureAwait(false);
            call.OnResponse(response);
            CompleteAnswered(call, context);
            return response;
        }
        catch (Exception ex)
        {
            throw await FailAsync(call, ex, context).ConfigureAwait(false);
        }
        finally
        {
            Finish(call);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        using var call = CallScope.Start(context, engine, time.GetTimestamp());
        call.OnRequest(request);
        try
        {
            await continuation(request, new ObservedStreamWriter<TResponse>(responseStream, call), context).ConfigureAwait(false);
            call.Complete(context.Status.StatusCode, context.Status.Detail);
        }
        catch (Exception ex)
        {
            throw await FailAsync(call, ex, context).ConfigureAwait(false);
        }
        finally
        {
            Finish(call);
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        using var call = CallScope.Start(context, engine, time.GetTimestamp());
        try
        {
            var response = await continuation(new ObservedStreamReader<TRequest>(requestStream, call), context).ConfigureAwait(false);
            call.OnResponse(response);
            CompleteAnswered(call, context);
            return response;
        }
        catch (Exception ex)
        {
            throw await FailAsync(call, ex, context).ConfigureAwait(false);
        }
        finally
        {
            Finish(call);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        using var call = CallScope.Start(context, engine, time.GetTimestamp());
        var isStream = !call.IsInfrastructure;
        if (isStream)
        {
            RpcTelemetry.ActiveStreams.Add(1);
        }

        try
        {
            await continuation(new ObservedStreamReader<TRequest>(requestStream, call), new ObservedStreamWriter<TResponse>(responseStream, call), context).ConfigureAwait(false);
            call.Complete(context.Status.StatusCode, context.Status.Detail);
        }
        catch (Exception ex)
        {
            throw await FailAsync(call, ex, context).ConfigureAwait(false);
        }
        finally
        {
            if (isStream)
            {
                RpcTelemetry.ActiveStreams.Add(-1);
            }

            Finish(call);
        }
    }

    private async Task<RpcException> FailAsync(CallScope call, Exception exception, ServerCallContext context)
    {
        if (exception is RpcException rpc)
        {
            call.Complete(rpc.StatusCode, rpc.Status.Detail);
            return rpc;
        }

        // A client's RST_STREAM fails the request body with an IOException at once, while Kestrel cancels
        // the call's token a moment later on the thread pool: a handler reading the request can fail first
        // (rarely: once in a CI run of LoggingTests, 2026-12-05). An IOException waits that moment out.
        if (exception is IOException && !context.CancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(s_abortGrace, time, context.CancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }

        if (IsClientGone(exception, context))
        {
            var code = context.Deadline <= time.GetUtcNow().UtcDateTime ? StatusCode.DeadlineExceeded : StatusCode.Cancelled;
            call.Complete(code, exception.Message);
            LogClientGone(logger, call.Method, code, exception.Message);
            return new RpcException(new Status(code, code == StatusCode.DeadlineExceeded ? "The deadline passed." : "The call was cancelled."));
        }

        call.Complete(StatusCode.Internal, exception.Message);
        LogUnexpected(logger, exception, call.Method, call.Model, call.Tasks);
        return new RpcException(new Status(StatusCode.Internal, "An internal error occurred; the server has logged it."));
    }

    // The request was aborted (client cancel, reset, or the deadline passed): whatever the handler threw
    // on its way out is a consequence, not a fault.
    private static bool IsClientGone(Exception exception, ServerCallContext context) =>
        context.CancellationToken.IsCancellationRequested
        && exception is OperationCanceledException or IOException or InvalidOperationException or ObjectDisposedException;

    private void Finish(CallScope call)
    {
        var duration = time.GetElapsedTime(call.StartedAt);
        call.RecordDuration(duration);
        var settings = options.CurrentValue;
        var level = call.IsInfrastructure ? settings.AccessLogInfrastructureLevel : settings.AccessLogLevel;
        if (!logger.IsEnabled(level))
        {
            return;
        }

        if (call.Status == StatusCode.OK && settings.AccessLogSuccessSampleRatio < 1 && Random.Shared.NextDouble() >= settings.AccessLogSuccessSampleRatio)
        {
            return;
        }

        LogCall(logger, level, call.Method, call.Status, duration.TotalMilliseconds, call.Model, call.Tasks, call.RequestBytes, call.ResponseBytes, call.RequestMessages, call.ResponseMessages);
    }
}
