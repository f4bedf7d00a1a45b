using System.Collections.Concurrent;
using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;
using MaskFormer.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Trace;

namespace MaskFormer.Server.Tests.Observability;

/// <summary>
/// A real server on a loopback port whose spans go to OpenTelemetry's in-memory exporter and whose
/// logs are captured. It serves the committed model under a name of its own, so the spans and metrics
/// of other tests' servers in this process (the source and meter are process-wide) can be told apart.
/// </summary>
internal sealed class TelemetryServer : IAsyncDisposable
{
    private readonly List<Activity> _spans = [];
    private readonly string _repository;
    private WebApplication _app = null!;

    private TelemetryServer(string modelName)
    {
        ModelName = modelName;
        _repository = Directory.CreateTempSubdirectory("maskformer-telemetry-").FullName;
        RepositoryPaths.CopyTinyShapes(Path.Combine(_repository, modelName));
    }

    public string ModelName { get; }

    public Uri Address { get; private set; } = null!;

    public GrpcChannel Channel { get; private set; } = null!;

    public SegmentationService.SegmentationServiceClient Client { get; private set; } = null!;

    public CapturedLogs Logs { get; } = new();

    public IServiceProvider Services => _app.Services;

    public WebApplication App => _app;

    public static async Task<TelemetryServer> StartAsync(string modelName, string[] extra, Action<IServiceCollection>? services = null)
    {
        var server = new TelemetryServer(modelName);
        string[] args = [.. ServerFixture.Arguments(extra), $"--MaskFormer:Models:Path={server._repository}"];
        server._app = ServerApp.Build(args, builder =>
        {
            builder.Services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(server._spans));
            builder.Logging.AddProvider(server.Logs);
            services?.Invoke(builder.Services);
        });
        await server._app.StartAsync();
        server.Address = new Uri(ServerFixture.GrpcAddress(server._app));
        server.Channel = GrpcChannel.ForAddress(server.Address);
        server.Client = new SegmentationService.SegmentationServiceClient(server.Channel);
        await ServerFixture.WaitUntilServingAsync(server.Channel);
        return server;
    }

    /// <summary>A W3C traceparent of a fresh client trace, and the metadata carrying it.</summary>
    public static (ActivityTraceId TraceId, ActivitySpanId SpanId, Metadata Headers) ClientTrace()
    {
        var traceId = ActivityTraceId.CreateRandom();
        var spanId = ActivitySpanId.CreateRandom();
        return (traceId, spanId, new Metadata { { "traceparent", $"00-{traceId}-{spanId}-01" } });
    }

    /// <summary>The finished spans of one trace, once <paramref name="complete"/> says they are all there.</summary>
    public async Task<IReadOnlyList<Activity>> SpansAsync(ActivityTraceId traceId, Func<IReadOnlyList<Activity>, bool> complete)
    {
        var until = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            Activity[] snapshot;
            lock (_spans)
            {
                snapshot = [.. _spans];
            }

            var trace = snapshot.Where(span => span.TraceId == traceId).ToList();
            if (complete(trace))
            {
                return trace;
            }

            if (DateTime.UtcNow > until)
            {
                Assert.Fail($"the spans of trace {traceId} did not arrive; got: {SpanTree.Render(trace)}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Every finished span so far.</summary>
    public IReadOnlyList<Activity> AllSpans()
    {
        lock (_spans)
        {
            return [.. _spans];
        }
    }

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_repository, recursive: true);
    }
}

/// <summary>Every log entry, with the trace it was written in.</summary>
internal sealed class CapturedLogs : ILoggerProvider
{
    public ConcurrentQueue<LogEntry> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(CapturedLogs owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Entries.Enqueue(new LogEntry(category, logLevel, eventId, formatter(state, exception), exception, Activity.Current?.TraceId ?? default));
    }
}

internal sealed record LogEntry(string Category, LogLevel Level, EventId EventId, string Message, Exception? Exception, ActivityTraceId TraceId);

[CollectionDefinition(Name)]
public sealed class TelemetryTestGroup
{
    public const string Name = "telemetry";
}
