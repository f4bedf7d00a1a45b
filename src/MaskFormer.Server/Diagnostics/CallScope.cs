using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Diagnostics;
using MaskFormer.Server.Hosting;
using MaskFormer.Server.Mapping;

namespace MaskFormer.Server.Diagnostics;

/// <summary>
/// One call as telemetry sees it: its server span (continuing the caller's W3C traceparent), the model
/// and tasks it asked for, message sizes, and its final status.
/// </summary>
internal sealed class CallScope : IDisposable
{
    private readonly TagList _methodTags;
    private readonly SegmentationEngine _engine;
    private string? _requestedModel;
    private string? _model;
    private SegmentationTasks _tasks;

    private CallScope(ServerCallContext context, SegmentationEngine engine, long startedAt)
    {
        _engine = engine;
        StartedAt = startedAt;
        // The service's own name, not the path's case: no client-chosen metric tag values.
        Method = CallMethod.Of(context);
        (Service, MethodName) = Split(Method);
        IsInfrastructure = IsInfrastructureService(Service);
        _methodTags = MethodTags(Service, MethodName);
    }

    public string Method { get; }

    /// <summary>"/package.Service/Method" as its service and method names.</summary>
    public static (string Service, string Method) Split(string method)
    {
        var slash = method.LastIndexOf('/');
        return slash > 0 ? (method[1..slash], method[(slash + 1)..]) : (method, method);
    }

    /// <summary>Health and reflection: logged at the infrastructure level.</summary>
    public static bool IsInfrastructureService(string service) => service.StartsWith("grpc.", StringComparison.Ordinal);

    /// <summary>The RPC tags every instrument of a call carries.</summary>
    public static TagList MethodTags(string service, string method) =>
        new() { { RpcTelemetry.RpcSystem, "grpc" }, { RpcTelemetry.RpcService, service }, { RpcTelemetry.RpcMethod, method } };

    public string Service { get; }

    public string MethodName { get; }

    public bool IsInfrastructure { get; }

    public long StartedAt { get; }

    public Activity? Span { get; private set; }

    public long RequestBytes { get; private set; }

    public long ResponseBytes { get; private set; }

    public int RequestMessages { get; private set; }

    public int ResponseMessages { get; private set; }

    public StatusCode Status { get; private set; } = StatusCode.OK;

    /// <summary>The served model the call used: as answered, else as asked for when it is served (never a client's arbitrary string).</summary>
    public string Model => _model ?? (_requestedModel is { } requested && _engine.Models.Any(m => m.Name == requested) ? requested : string.Empty);

    public string Tasks => _tasks == SegmentationTasks.None ? string.Empty : TelemetryTags.Label(_tasks);

    public static CallScope Start(ServerCallContext context, SegmentationEngine engine, long startedAt)
    {
        // The call is the interceptor's to count from here (CallTelemetryInterceptor.ObserveAsync).
        InterceptedCall.Mark(context);
        var call = new CallScope(context, engine, startedAt);
        call.Span = StartSpan(call, context);
        return call;
    }

    public void OnRequest(object message)
    {
        RequestMessages++;
        if (message is IMessage protobuf)
        {
            var size = protobuf.CalculateSize();
            RequestBytes += size;
            RpcTelemetry.RequestSize.Record(size, _methodTags);
        }

        switch (message)
        {
            case SegmentRequest request:
                Asked(request.Model, request.Tasks);
                break;
            case SegmentStreamRequest { MessageCase: SegmentStreamRequest.MessageOneofCase.Config } stream:
                Asked(stream.Config.Model, stream.Config.Tasks);
                break;
        }
    }

    public void OnResponse(object message)
    {
        ResponseMessages++;
        if (message is IMessage protobuf)
        {
            var size = protobuf.CalculateSize();
            ResponseBytes += size;
            RpcTelemetry.ResponseSize.Record(size, _methodTags);
        }

        var answeredBy = message switch
        {
            SegmentResponse response => response.Model,
            SegmentStreamResponse { Result: { } result } => result.Model,
            _ => null,
        };
        if (!string.IsNullOrEmpty(answeredBy) && _model is null)
        {
            _model = answeredBy;
            Span?.SetTag(TelemetryTags.ModelName, answeredBy);
        }
    }

    public void Complete(StatusCode status, string? description)
    {
        Status = status;
        if (Span is { } span)
        {
            SetStatus(span, status, description);
        }
    }

    /// <summary>
    /// The span of a call answered before the interceptors ran (refused for its token, the call limit or the
    /// request-bytes budget, a message over the limit): the span an intercepted call has, from
    /// <paramref name="startedAt"/> until now, with its status; no model or tasks (none were read).
    /// <paramref name="log"/> runs while that span is current, so that the call's log line carries the
    /// ids of the span exported for it.
    /// </summary>
    public static void RecordAnsweredEarly(HttpContext http, string service, string method, StatusCode status, string? description, DateTimeOffset startedAt, Action log)
    {
        if (!MaskFormerTelemetry.ActivitySource.HasListeners())
        {
            log();
            return;
        }

        var headers = http.Request.Headers;
        ActivityContext.TryParse(headers["traceparent"].ToString(), headers["tracestate"].ToString(), isRemote: true, out var parent);
        var tags = MethodTags(service, method);
        tags.Add(RpcTelemetry.RpcGrpcStatusCode, (int)status);
        if (http.Connection.RemoteIpAddress is { } peer)
        {
            tags.Add(RpcTelemetry.NetworkPeerAddress, (peer.IsIPv4MappedToIPv6 ? peer.MapToIPv4() : peer).ToString());
            tags.Add(RpcTelemetry.NetworkPeerPort, http.Connection.RemotePort);
        }

        if (http.Request.Host.HasValue)
        {
            tags.Add(RpcTelemetry.ServerAddress, http.Request.Host.Host.Trim('[', ']'));
            if (http.Request.Host.Port is { } port)
            {
                tags.Add(RpcTelemetry.ServerPort, port);
            }
        }

        // As StartSpan: from the caller's traceparent, not under a request activity nothing exports. A caller
        // refused for who it is gets no say in where its span goes (any trace it names): its span starts a
        // trace of its own, linked to the one it named.
        var untrusted = status is StatusCode.Unauthenticated or StatusCode.PermissionDenied;
        ActivityLink[]? links = untrusted && parent != default ? [new ActivityLink(parent)] : null;
        var current = Activity.Current;
        Activity.Current = null;
        try
        {
            using var span = MaskFormerTelemetry.ActivitySource.StartActivity($"{service}/{method}", ActivityKind.Server, untrusted ? default : parent, tags, links, startedAt);
            if (span is not null)
            {
                SetStatus(span, status, description);
            }
            else
            {
                // Not sampled: the log line keeps the request's own trace, as before any span.
                Activity.Current = current;
            }

            log();
        }
        finally
        {
            Activity.Current = current;
        }
    }

    private static void SetStatus(Activity span, StatusCode status, string? description)
    {
        span.SetTag(RpcTelemetry.RpcGrpcStatusCode, (int)status);

        // As OpenTelemetry's gRPC conventions: these codes mark a server span as failed; the others are the client's doing.
        if (status is StatusCode.Unknown or StatusCode.DeadlineExceeded or StatusCode.Unimplemented or StatusCode.Internal or StatusCode.Unavailable or StatusCode.DataLoss)
        {
            span.SetStatus(ActivityStatusCode.Error, description);
        }
    }

    public void RecordDuration(TimeSpan duration)
    {
        var tags = _methodTags;
        tags.Add(RpcTelemetry.RpcGrpcStatusCode, (int)Status);
        if (Model is { Length: > 0 } model)
        {
            tags.Add(TelemetryTags.ModelName, model);
        }

        if (_tasks != SegmentationTasks.None)
        {
            tags.Add(TelemetryTags.Tasks, Tasks);
        }

        RpcTelemetry.CallDuration.Record(duration.TotalSeconds, tags);
    }

    public void Dispose() => Span?.Dispose();

    private void Asked(string model, IEnumerable<SegmentationTask> tasks)
    {
        _requestedModel = model;
        try
        {
            _tasks = RequestMapper.ToTasks(tasks);
        }
        catch (SegmentationException)
        {
            _tasks = SegmentationTasks.None;
        }

        Span?.SetTag(TelemetryTags.Tasks, Tasks);
        if (!string.IsNullOrEmpty(model))
        {
            // The caller's string, as long as it came: shortened as errors shorten it, so one span cannot outgrow an export batch.
            Span?.SetTag(TelemetryTags.ModelName + ".requested", ClientText.Shorten(model));
        }
    }

    // The caller's traceparent (gRPC metadata is HTTP/2 headers) is the parent. ASP.NET Core may have
    // made an activity of its own for the request that nothing exports; a span under it would hang from
    // a parent no backend ever sees, so the server span starts from the header instead.
    private static Activity? StartSpan(CallScope call, ServerCallContext context)
    {
        if (!MaskFormerTelemetry.ActivitySource.HasListeners())
        {
            return null;
        }

        var headers = context.RequestHeaders;
        ActivityContext.TryParse(headers.GetValue("traceparent"), headers.GetValue("tracestate"), isRemote: true, out var parent);
        Activity.Current = null;

        var tags = call._methodTags;
        if (Peer.TryParse(context.Peer, out var address, out var port))
        {
            tags.Add(RpcTelemetry.NetworkPeerAddress, address);
            tags.Add(RpcTelemetry.NetworkPeerPort, port);
        }

        if (Peer.TryParse(context.Host, out var host, out var hostPort, hostOnly: true))
        {
            tags.Add(RpcTelemetry.ServerAddress, host);
            if (hostPort > 0)
            {
                tags.Add(RpcTelemetry.ServerPort, hostPort);
            }
        }

        return MaskFormerTelemetry.ActivitySource.StartActivity($"{call.Service}/{call.MethodName}", ActivityKind.Server, parent, tags);
    }
}

/// <summary>Set once the telemetry interceptor has taken a call.</summary>
internal sealed class InterceptedCall
{
    public bool Value { get; private set; }

    public static void Mark(ServerCallContext context)
    {
        if (CallMethod.HttpContextOf(context)?.Features.Get<InterceptedCall>() is { } call)
        {
            call.Value = true;
        }
    }
}
