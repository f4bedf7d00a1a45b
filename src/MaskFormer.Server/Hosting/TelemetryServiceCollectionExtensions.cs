using System.Net;
using MaskFormer.Engine.Diagnostics;
using MaskFormer.Server.Diagnostics;
using MaskFormer.Server.Streaming;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace MaskFormer.Server.Hosting;

/// <summary>
/// All telemetry set up in one place: OpenTelemetry traces and metrics of the service's one source and
/// meter plus .NET runtime and process metrics; OTLP export when the standard <c>OTEL_EXPORTER_OTLP_*</c>
/// variables name an endpoint (off otherwise); a Prometheus scrape endpoint on a port of its own; and
/// the call interceptor that opens server spans, records RPC metrics and writes the access log.
/// </summary>
public static class TelemetryServiceCollectionExtensions
{
    /// <summary>The service name when OTEL_SERVICE_NAME does not say.</summary>
    public const string DefaultServiceName = "maskformer-serve";

    private static readonly string[] s_otlpEndpointKeys = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"];

    /// <summary>Adds OpenTelemetry, the exporters the configuration asks for, and the call interceptor.</summary>
    public static IServiceCollection AddMaskFormerTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<TelemetryOptions>().BindConfiguration(TelemetryOptions.SectionName)
            .Validate(o => o.StreamFrameSampleInterval >= 1, $"{TelemetryOptions.SectionName}:StreamFrameSampleInterval must be at least 1.")
            .Validate(o => o.AccessLogSuccessSampleRatio is >= 0 and <= 1, $"{TelemetryOptions.SectionName}:AccessLogSuccessSampleRatio must be between 0 and 1.")
            .Validate(o => string.IsNullOrEmpty(o.PrometheusUrl) || MetricsEndpoint.TryParse(o.PrometheusUrl, out _), $"{TelemetryOptions.SectionName}:PrometheusUrl must be empty or http://HOST:PORT.")
            .ValidateOnStart();
        var settings = configuration.GetSection(TelemetryOptions.SectionName).Get<TelemetryOptions>() ?? new TelemetryOptions();
        var prometheus = !string.IsNullOrEmpty(settings.PrometheusUrl);
        var otlp = s_otlpEndpointKeys.Any(key => !string.IsNullOrEmpty(configuration[key]));

        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(
                configuration["OTEL_SERVICE_NAME"] is { Length: > 0 } name ? name : DefaultServiceName,
                serviceVersion: typeof(TelemetryServiceCollectionExtensions).Assembly.GetName().Version?.ToString()))
            .WithTracing(tracing => tracing
                .AddSource(MaskFormerTelemetry.Name)
                .SetSampler(SamplerFromConfiguration(configuration)))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(MaskFormerTelemetry.Name).AddRuntimeInstrumentation().AddProcessInstrumentation();
                if (prometheus)
                {
                    metrics.AddPrometheusExporter();
                }
            });
        if (otlp)
        {
            telemetry.UseOtlpExporter();
        }

        if (prometheus && MetricsEndpoint.TryParse(settings.PrometheusUrl, out var endpoint))
        {
            services.TryAddSingleton(endpoint);
            services.AddOptions<KestrelServerOptions>().Configure<MetricsEndpoint>((kestrel, metricsEndpoint) => metricsEndpoint.Listen(kestrel));
        }

        services.TryAddSingleton<CallTelemetryInterceptor>();
        services.TryAddSingleton<FrameTelemetry>();
        // Outermost, so calls other interceptors turn away (draining) are traced, counted and logged too.
        services.AddOptions<Grpc.AspNetCore.Server.GrpcServiceOptions>().Configure(grpc =>
        {
            grpc.Interceptors.Add<CallTelemetryInterceptor>();
            var registration = grpc.Interceptors[^1];
            grpc.Interceptors.RemoveAt(grpc.Interceptors.Count - 1);
            grpc.Interceptors.Insert(0, registration);
        });
        return services;
    }

    /// <summary>
    /// Counts and logs the gRPC calls answered before the interceptors run (<see cref="CallTelemetryInterceptor.ObserveAsync"/>):
    /// first among the middlewares that may answer a call themselves.
    /// </summary>
    public static IApplicationBuilder UseMaskFormerCallTelemetry(this IApplicationBuilder app)
    {
        var telemetry = app.ApplicationServices.GetRequiredService<CallTelemetryInterceptor>();
        return app.Use((context, next) =>
            context.GetEndpoint()?.Metadata.GetMetadata<Grpc.AspNetCore.Server.GrpcMethodMetadata>() is { } method
                ? telemetry.ObserveAsync(context, next, method.Method.FullName)
                : next(context));
    }

    /// <summary>Serves <c>/metrics</c> in Prometheus's text format on the metrics listener only.</summary>
    public static IApplicationBuilder UseMaskFormerMetricsEndpoint(this IApplicationBuilder app)
    {
        if (app.ApplicationServices.GetService<MetricsEndpoint>() is { } endpoint)
        {
            app.UseOpenTelemetryPrometheusScrapingEndpoint(context => endpoint.Serves(context) && context.Request.Path == "/metrics");
        }

        return app;
    }

    // OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, as the OpenTelemetry specification defines them;
    // the default is parentbased_always_on.
    private static Sampler SamplerFromConfiguration(IConfiguration configuration)
    {
        var ratio = double.TryParse(configuration["OTEL_TRACES_SAMPLER_ARG"], System.Globalization.CultureInfo.InvariantCulture, out var arg) && arg is >= 0 and <= 1 ? arg : 1.0;
        return configuration["OTEL_TRACES_SAMPLER"]?.Trim().ToLowerInvariant() switch
        {
            "always_on" => new AlwaysOnSampler(),
            "always_off" => new AlwaysOffSampler(),
            "traceidratio" => new TraceIdRatioBasedSampler(ratio),
            "parentbased_always_off" => new ParentBasedSampler(new AlwaysOffSampler()),
            "parentbased_traceidratio" => new ParentBasedSampler(new TraceIdRatioBasedSampler(ratio)),
            _ => new ParentBasedSampler(new AlwaysOnSampler()),
        };
    }
}

/// <summary>The Prometheus listener: its own HTTP/1.1 socket, so the gRPC port stays HTTP/2 only.</summary>
internal sealed class MetricsEndpoint(IPAddress? address, int port)
{
    private ListenOptions? _listener;

    public static bool TryParse(string url, out MetricsEndpoint endpoint)
    {
        endpoint = null!;
        if (!Uri.TryCreate(url.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal), UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
        {
            return false;
        }

        IPAddress? address = null;
        if (!uri.IsLoopback || uri.HostNameType != UriHostNameType.Dns)
        {
            if (!IPAddress.TryParse(uri.Host.Trim('[', ']'), out address))
            {
                return false;
            }
        }

        endpoint = new MetricsEndpoint(address, uri.Port);
        return true;
    }

    public void Listen(KestrelServerOptions kestrel)
    {
        void Configure(ListenOptions listen)
        {
            listen.Protocols = HttpProtocols.Http1;
            _listener = listen;
        }

        if (address is null)
        {
            kestrel.ListenLocalhost(port, Configure);
        }
        else
        {
            kestrel.Listen(address, port, Configure);
        }
    }

    /// <summary>The port bound, once the server has started.</summary>
    public int? BoundPort => _listener?.IPEndPoint?.Port;

    /// <summary>True for a request that came in on this listener (its port is known once bound, even when 0 was asked for).</summary>
    public bool Serves(HttpContext context) =>
        _listener is { } listener && (listener.IPEndPoint?.Port ?? port) == context.Connection.LocalPort;
}
