namespace MaskFormer.Server.Hosting;

/// <summary>gRPC transport limits, applied to gRPC and Kestrel alike. Bound from "MaskFormer:Grpc".</summary>
public sealed class GrpcServerOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "MaskFormer:Grpc";

    /// <summary>The bytes of gRPC framing in front of each message (compressed flag and length).</summary>
    public const int MessageFrameHeader = 5;

    /// <summary>
    /// Largest request message in bytes (an encoded image or raw frame). Kestrel's request-body limit of a
    /// unary call follows it, so one limit answers RESOURCE_EXHAUSTED whatever the size. Default 64 MiB.
    /// </summary>
    public int MaxReceiveMessageSize { get; set; } = 64 * 1024 * 1024;

    /// <summary>Largest response message in bytes. Default 256 MiB.</summary>
    public int MaxSendMessageSize { get; set; } = 256 * 1024 * 1024;

    /// <summary>
    /// Bytes of request messages the server holds at once, over all SegmentationService calls, counted
    /// from each message's gRPC header (wire bytes, a compressed message as <see cref="MaxReceiveMessageSize"/>;
    /// an image is held about twice while gRPC parses it). A unary call that finds no room is answered
    /// RESOURCE_EXHAUSTED with RetryInfo before its message is read; a stream waits for room. At least
    /// <see cref="MaxReceiveMessageSize"/>. Default 256 MiB.
    /// </summary>
    public long MaxRequestBytesInFlight { get; set; } = 256L * 1024 * 1024;

    /// <summary>
    /// The slowest a request message holding part of <see cref="MaxRequestBytesInFlight"/> may arrive, in
    /// bytes a second, after 5 s; a slower call fails RESOURCE_EXHAUSTED, so a header that claims a large
    /// message and stops cannot hold the budget. 0 for no minimum. Default 64 KiB a second.
    /// </summary>
    public long MinRequestBytesPerSecond { get; set; } = 64 * 1024;

    /// <summary>
    /// Calls and streams to SegmentationService running at once, over all connections, each counted from
    /// its request headers until its response ends; beyond it RESOURCE_EXHAUSTED with RetryInfo before any
    /// of the call's request message is read. Default 1024.
    /// </summary>
    public int MaxConcurrentCalls { get; set; } = 1024;

    /// <summary>HTTP/2 streams (calls) one connection may have open at once (Kestrel's Http2.MaxStreamsPerConnection). Default 100.</summary>
    public int MaxStreamsPerConnection { get; set; } = 100;

    /// <summary>Open connections (Kestrel's MaxConcurrentConnections); further connections are refused. Default 1000.</summary>
    public int MaxConnections { get; set; } = 1000;

    /// <summary>
    /// The deadline of a unary (or server-streaming) call that sets none; past it the call ends with
    /// DEADLINE_EXCEEDED. SegmentStream gets none: it lives as long as the video. 0 for none. Default 60 s.
    /// </summary>
    public TimeSpan DefaultDeadline { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The retry delay RetryInfo suggests when <see cref="MaxConcurrentCalls"/> is reached.</summary>
    internal static TimeSpan CallLimitRetryAfter { get; } = TimeSpan.FromSeconds(1);
}
