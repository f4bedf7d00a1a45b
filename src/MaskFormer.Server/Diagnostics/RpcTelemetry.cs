using System.Diagnostics.Metrics;
using MaskFormer.Engine.Diagnostics;

namespace MaskFormer.Server.Diagnostics;

/// <summary>
/// The host's instruments, on the engine's one <see cref="MaskFormerTelemetry.Meter"/>, named per
/// OpenTelemetry's RPC semantic conventions where they apply.
/// </summary>
internal static class RpcTelemetry
{
    public const string RpcSystem = "rpc.system";
    public const string RpcService = "rpc.service";
    public const string RpcMethod = "rpc.method";
    public const string RpcGrpcStatusCode = "rpc.grpc.status_code";
    public const string ServerAddress = "server.address";
    public const string ServerPort = "server.port";
    public const string NetworkPeerAddress = "network.peer.address";
    public const string NetworkPeerPort = "network.peer.port";
    public const string FrameSpanName = "maskformer.frame";
    public const string TlsRefusalReason = "maskformer.tls.refusal_reason";

    public static readonly Histogram<double> CallDuration = MaskFormerTelemetry.Meter.CreateHistogram(
        "rpc.server.call.duration", "s", "gRPC calls handled, by service, method, status code, model and tasks.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = MaskFormerTelemetry.DurationBuckets });

    public static readonly Histogram<long> RequestSize = MaskFormerTelemetry.Meter.CreateHistogram<long>(
        "rpc.server.request.size", "By", "Size of each request message received, by service and method.");

    public static readonly Histogram<long> ResponseSize = MaskFormerTelemetry.Meter.CreateHistogram<long>(
        "rpc.server.response.size", "By", "Size of each response message sent, by service and method.");

    public static readonly UpDownCounter<long> RequestBytes = MaskFormerTelemetry.Meter.CreateUpDownCounter<long>(
        "maskformer.request.bytes", "By", "Bytes of request messages held now, from each message's header (at most MaskFormer:Grpc:MaxRequestBytesInFlight).");

    public static readonly Counter<long> RequestBytesRefused = MaskFormerTelemetry.Meter.CreateCounter<long>(
        "maskformer.request.bytes_refused", "{request}", "Calls answered RESOURCE_EXHAUSTED because request messages held MaskFormer:Grpc:MaxRequestBytesInFlight (unary calls), or because a message that held part of it arrived slower than MaskFormer:Grpc:MinRequestBytesPerSecond.");

    public static readonly UpDownCounter<long> ActiveStreams = MaskFormerTelemetry.Meter.CreateUpDownCounter<long>(
        "maskformer.streams.active", "{stream}", "SegmentStream calls open now.");

    public static readonly Counter<long> Frames = MaskFormerTelemetry.Meter.CreateCounter<long>(
        "maskformer.stream.frames", "{frame}", "Stream frames answered, by outcome (result, error, skipped) and skip reason.");

    public static readonly UpDownCounter<long> UnwrittenBytes = MaskFormerTelemetry.Meter.CreateUpDownCounter<long>(
        "maskformer.stream.unwritten_bytes", "By", "Bytes of finished stream answers not yet handed to the transport.");

    public static readonly Counter<long> HeldBack = MaskFormerTelemetry.Meter.CreateCounter<long>(
        "maskformer.stream.held_back", "{event}", "Times a stream started no frame because its unwritten answers reached MaxUnwrittenBytes.");

    // Every refusal, where the warning (event 409) is written at most once a minute per certificate.
    public static readonly Counter<long> ClientCertificateRefusals = MaskFormerTelemetry.Meter.CreateCounter<long>(
        "maskformer.tls.client_certificate_refusals", "{connection}", "TLS handshakes mutual TLS refused, logged or not, by reason (no_certificate, untrusted, not_time_valid, not_valid_for_usage, other).");
}
