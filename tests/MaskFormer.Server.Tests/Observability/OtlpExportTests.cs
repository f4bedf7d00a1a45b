using System.Collections.Concurrent;
using System.Diagnostics;
using Grpc.Core;
using MaskFormer.Contracts.V1;
using MaskFormer.Server.Tests.Otlp;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;

namespace MaskFormer.Server.Tests.Observability;

[Collection(TelemetryTestGroup.Name)]
public sealed class OtlpExportTests
{
    [Fact]
    public async Task Segment_OtlpEndpointSet_SpansReachAnOtlpGrpcReceiverOverTheWire()
    {
        var receiver = new OtlpTraceReceiver();
        var builder = LoopbackApp.CreateBuilder();
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(receiver);
        await using var collector = builder.Build();
        collector.MapGrpcService<OtlpTraceReceiver>();
        await collector.StartAsync();
        var endpoint = collector.Urls.First();

        await using var server = await TelemetryServer.StartAsync("exported", [
            $"--OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}",
            "--OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
            "--OTEL_BSP_SCHEDULE_DELAY=100",
            "--OTEL_SERVICE_NAME=maskformer-under-test",
        ]);
        var (traceId, clientSpanId, headers) = TelemetryServer.ClientTrace();
        await server.Client.SegmentAsync(new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) }, headers);

        var traceBytes = Convert.FromHexString(traceId.ToHexString());
        var until = DateTime.UtcNow.AddSeconds(60);
        List<(ResourceSpans Resource, ScopeSpans Scope, Span Span)> spans;
        while (true)
        {
            spans = [.. receiver.Requests.SelectMany(r => r.ResourceSpans).SelectMany(rs => rs.ScopeSpans.SelectMany(ss => ss.Spans.Select(s => (rs, ss, s))))
                .Where(x => x.s.TraceId.Span.SequenceEqual(traceBytes))];
            if (spans.Any(x => x.Span.Name == "maskformer.model_run") && spans.Any(x => x.Span.Name == "maskformer.v1.SegmentationService/Segment"))
            {
                break;
            }

            Assert.True(DateTime.UtcNow < until, $"no spans of trace {traceId} reached the receiver ({receiver.Requests.Count} export calls)");
            await Task.Delay(100);
        }

        var call = spans.Single(x => x.Span.Name == "maskformer.v1.SegmentationService/Segment");
        Assert.Equal(Convert.FromHexString(clientSpanId.ToHexString()), call.Span.ParentSpanId.ToByteArray());
        Assert.Equal(2, call.Span.Kind);
        Assert.Contains(call.Span.Attributes, a => a.Key == "rpc.method" && a.Value.StringValue == "Segment");
        Assert.Equal("MaskFormer", call.Scope.Scope.Name);
        Assert.Contains(call.Resource.Resource.Attributes, a => a.Key == "service.name" && a.Value.StringValue == "maskformer-under-test");
        var run = spans.Single(x => x.Span.Name == "maskformer.model_run").Span;
        Assert.Contains(run.Attributes, a => a.Key == "maskformer.batch.size" && a.Value.IntValue == 1);
        Assert.Single(run.Links);
        await collector.StopAsync();
    }

    /// <summary>A minimal OTLP/gRPC trace receiver: keeps every export request.</summary>
    private sealed class OtlpTraceReceiver : TraceService.TraceServiceBase
    {
        public ConcurrentQueue<ExportTraceServiceRequest> Requests { get; } = new();

        public override Task<ExportTraceServiceResponse> Export(ExportTraceServiceRequest request, ServerCallContext context)
        {
            Requests.Enqueue(request);
            return Task.FromResult(new ExportTraceServiceResponse());
        }
    }
}
