namespace MaskFormer.Server.Diagnostics;

/// <summary>Tracing, metrics endpoint and access log settings. Bound from "MaskFormer:Telemetry".</summary>
public sealed class TelemetryOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "MaskFormer:Telemetry";

    /// <summary>
    /// Where the Prometheus scrape endpoint (<c>/metrics</c>, HTTP/1.1) listens, e.g. <c>http://0.0.0.0:9464</c>;
    /// empty for none. It is a listener of its own: the gRPC port stays HTTP/2 only.
    /// </summary>
    public string PrometheusUrl { get; set; } = string.Empty;

    /// <summary>Trace one frame in this many of each stream (the first always); 1 traces every frame.</summary>
    public int StreamFrameSampleInterval { get; set; } = 30;

    /// <summary>The access log's level for calls of the application's services.</summary>
    public Microsoft.Extensions.Logging.LogLevel AccessLogLevel { get; set; } = Microsoft.Extensions.Logging.LogLevel.Information;

    /// <summary>The access log's level for grpc.health.v1 and reflection calls (probes come every few seconds).</summary>
    public Microsoft.Extensions.Logging.LogLevel AccessLogInfrastructureLevel { get; set; } = Microsoft.Extensions.Logging.LogLevel.Debug;

    /// <summary>The fraction of successful calls the access log writes (0 to 1); failed calls are always written.</summary>
    public double AccessLogSuccessSampleRatio { get; set; } = 1.0;
}
