using System.Diagnostics;
using Grpc.Core;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Sessions;
using MaskFormer.Testing;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace MaskFormer.Server.Tests.Observability;

// One collection for every test whose server exports spans: the activity source is process-wide, and a
// span is sampled when any listening provider samples it, so their samplers must not run side by side.
[Collection(TelemetryTestGroup.Name)]
public sealed class TracingTests(ITestOutputHelper output)
{

    [Fact]
    public async Task Start_WarmUp_ExportsNoSpans()
    {
        await using var server = await TelemetryServer.StartAsync("quiet", []);

        // The warm-up maps and encodes its results as a call would; none of that is a trace of a call. The
        // activity source is process-wide, so other classes' calls may be exported here too: their encode
        // spans hang under a call's or a frame's span, and only one without a parent is the fault.
        var spans = server.AllSpans().Where(s => s.DisplayName == "maskformer.encode" && s.ParentSpanId == default).ToList();
        Assert.True(spans.Count == 0, "encode spans without a call, exported at start: " + SpanTree.Render(spans));
    }

    [Fact]
    public async Task Segment_ClientTraceparent_SpanTreeContinuesTheCallersTraceWithEveryStage()
    {
        await using var server = await TelemetryServer.StartAsync("traced", []);
        var (traceId, clientSpanId, headers) = TelemetryServer.ClientTrace();
        var response = await server.Client.SegmentAsync(
            new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]), Tasks = { SegmentationTask.Semantic, SegmentationTask.Panoptic } },
            headers);

        var spans = await server.SpansAsync(traceId, s => s.Any(x => x.DisplayName == "maskformer.v1.SegmentationService/Segment") && s.Any(x => x.DisplayName == "maskformer.model_run"));
        output.WriteLine(SpanTree.Render(spans));

        var call = Assert.Single(spans, s => s.DisplayName == "maskformer.v1.SegmentationService/Segment");
        Assert.Equal(clientSpanId, call.ParentSpanId);
        Assert.Equal(ActivityKind.Server, call.Kind);
        Assert.Equal("grpc", call.GetTagItem("rpc.system"));
        Assert.Equal("maskformer.v1.SegmentationService", call.GetTagItem("rpc.service"));
        Assert.Equal("Segment", call.GetTagItem("rpc.method"));
        Assert.Equal(0, call.GetTagItem("rpc.grpc.status_code"));
        Assert.Equal("traced", call.GetTagItem("maskformer.model.name"));
        Assert.Equal("127.0.0.1", call.GetTagItem("network.peer.address"));

        var segment = Assert.Single(spans, s => s.DisplayName == "maskformer.segment");
        Assert.Equal(call.SpanId, segment.ParentSpanId);
        Assert.Equal("traced", segment.GetTagItem("maskformer.model.name"));
        Assert.Equal(response.ModelVersion, segment.GetTagItem("maskformer.model.version"));
        Assert.Equal("cpu", segment.GetTagItem("maskformer.device"));
        Assert.Equal("semantic,panoptic", segment.GetTagItem("maskformer.tasks"));
        Assert.Equal((int)response.Width, segment.GetTagItem("maskformer.image.width"));
        Assert.Equal((int)response.Height, segment.GetTagItem("maskformer.image.height"));
        Assert.Equal(1, segment.GetTagItem("maskformer.batch.size"));

        string[] stages = ["maskformer.decode", "maskformer.preprocess", "maskformer.queue", "maskformer.model_run", "maskformer.postprocess", "maskformer.postprocess"];
        Assert.Equal(stages, spans.Where(s => s.ParentSpanId == segment.SpanId).OrderBy(s => s.StartTimeUtc).Select(s => s.DisplayName));

        // The modes run side by side, so their spans start in either order.
        Assert.Equal(["panoptic", "semantic"], spans.Where(s => s.DisplayName == "maskformer.postprocess").Select(s => (string)s.GetTagItem("maskformer.task")!).Order());
        var encode = Assert.Single(spans, s => s.DisplayName == "maskformer.encode");
        Assert.Equal(call.SpanId, encode.ParentSpanId);

        var run = Assert.Single(spans, s => s.DisplayName == "maskformer.model_run");
        Assert.Equal(1, run.GetTagItem("maskformer.batch.size"));
        Assert.Equal("cpu", run.GetTagItem("maskformer.device"));
        Assert.Equal(segment.SpanId, Assert.Single(run.Links).Context.SpanId);
        var queue = Assert.Single(spans, s => s.DisplayName == "maskformer.queue");
        Assert.InRange(Math.Abs((queue.Duration - TimeSpan.FromMilliseconds(response.Timings.QueueMs)).TotalMilliseconds), 0, 0.01);
    }

    [Fact]
    public async Task Segment_RefusedForItsTokenBeforeTheInterceptors_SpanOfItsOwnLinkedToTheCallersTrace()
    {
        var tokens = Path.Combine(Path.GetTempPath(), $"maskformer-trace-tokens-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(tokens, "the-right-token\n");
        try
        {
            await using var server = await TelemetryServer.StartAsync("traced", [$"--MaskFormer:Security:TokensFile={tokens}", "--Logging:LogLevel:Default=Information"]);
            var (traceId, clientSpanId, headers) = TelemetryServer.ClientTrace();

            var refused = await Assert.ThrowsAsync<RpcException>(() => server.Client.SegmentAsync(
                new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) }, headers).ResponseAsync);

            // A caller refused for who it is does not choose the trace its span joins: a trace of its own,
            // linked to the one it named.
            var call = await LinkedSpanAsync(server, traceId);
            output.WriteLine(SpanTree.Render([call]));
            Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
            Assert.Equal("maskformer.v1.SegmentationService/Segment", call.DisplayName);
            Assert.NotEqual(traceId, call.TraceId);
            Assert.Equal(default, call.ParentSpanId);
            Assert.Equal(clientSpanId, Assert.Single(call.Links).Context.SpanId);
            Assert.Equal(ActivityKind.Server, call.Kind);
            Assert.Equal("grpc", call.GetTagItem("rpc.system"));
            Assert.Equal("maskformer.v1.SegmentationService", call.GetTagItem("rpc.service"));
            Assert.Equal("Segment", call.GetTagItem("rpc.method"));
            Assert.Equal((int)StatusCode.Unauthenticated, call.GetTagItem("rpc.grpc.status_code"));
            Assert.Equal("127.0.0.1", call.GetTagItem("network.peer.address"));
            Assert.Null(call.GetTagItem("maskformer.model.name"));

            // The caller's doing, not the server's failure (OpenTelemetry's gRPC conventions, as for intercepted calls).
            Assert.Equal(ActivityStatusCode.Unset, call.Status);
            Assert.True(call.Duration > TimeSpan.Zero, $"duration {call.Duration}");

            // Its access log line is found from the span an operator sees, not from the trace the caller named.
            var logged = Assert.Single(server.Logs.Entries, e => e.EventId.Name == "Call" && e.Message.Contains("Unauthenticated", StringComparison.Ordinal));
            Assert.Equal(call.TraceId, logged.TraceId);
        }
        finally
        {
            File.Delete(tokens);
        }
    }

    private static async Task<Activity> LinkedSpanAsync(TelemetryServer server, ActivityTraceId traceId)
    {
        var until = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            if (server.AllSpans().FirstOrDefault(s => s.Links.Any(l => l.Context.TraceId == traceId)) is { } span)
            {
                return span;
            }

            Assert.True(DateTime.UtcNow < until, $"no span linked to trace {traceId}");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Segment_UnknownModelNameOfAMebibyte_SpanCarriesItShortened()
    {
        // One span must not outgrow an export batch because of what a caller typed.
        await using var server = await TelemetryServer.StartAsync("traced", []);
        var (traceId, _, headers) = TelemetryServer.ClientTrace();
        var huge = new string('m', 1 << 20);

        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.SegmentAsync(new SegmentRequest { Model = huge, Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) }, headers).ResponseAsync);

        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        var spans = await server.SpansAsync(traceId, s => s.Any(x => x.DisplayName == "maskformer.v1.SegmentationService/Segment"));
        var requested = (string)Assert.Single(spans, s => s.DisplayName == "maskformer.v1.SegmentationService/Segment").GetTagItem("maskformer.model.name.requested")!;
        Assert.Equal(ClientText.Shorten(huge), requested);
        Assert.True(requested.Length < 300, $"{requested.Length} characters");
    }

    [Fact]
    public async Task SegmentStream_TwoFrames_EachFrameASpanUnderTheStreamSpanWithItsStages()
    {
        await using var server = await TelemetryServer.StartAsync("traced", ["--MaskFormer:Telemetry:StreamFrameSampleInterval=1"]);
        var (traceId, clientSpanId, headers) = TelemetryServer.ClientTrace();
        using (var call = server.Client.SegmentStream(headers))
        {
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { Tasks = { SegmentationTask.Semantic } } });
            for (var i = 0; i < 2; i++)
            {
                await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = (ulong)(10 + i), Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[i]) } });
            }

            await call.RequestStream.CompleteAsync();
            await foreach (var _ in call.ResponseStream.ReadAllAsync())
            {
            }
        }

        var spans = await server.SpansAsync(traceId, s => s.Any(x => x.DisplayName == "maskformer.v1.SegmentationService/SegmentStream") && s.Count(x => x.DisplayName == "maskformer.model_run") == 2);
        output.WriteLine(SpanTree.Render(spans));

        var stream = Assert.Single(spans, s => s.DisplayName == "maskformer.v1.SegmentationService/SegmentStream");
        Assert.Equal(clientSpanId, stream.ParentSpanId);
        Assert.Equal("SegmentStream", stream.GetTagItem("rpc.method"));
        Assert.Equal(0, stream.GetTagItem("rpc.grpc.status_code"));
        var frames = spans.Where(s => s.DisplayName == "maskformer.frame").OrderBy(s => s.StartTimeUtc).ToList();
        Assert.Equal(2, frames.Count);
        Assert.All(frames, frame => Assert.Equal(stream.SpanId, frame.ParentSpanId));
        Assert.Equal([10L, 11L], frames.Select(f => f.GetTagItem("maskformer.frame.id")));
        Assert.All(frames, frame => Assert.Equal("result", frame.GetTagItem("maskformer.frame.outcome")));
        foreach (var frame in frames)
        {
            var segment = Assert.Single(spans, s => s.DisplayName == "maskformer.segment" && s.ParentSpanId == frame.SpanId);
            Assert.Contains(spans, s => s.DisplayName == "maskformer.model_run" && s.ParentSpanId == segment.SpanId);
            Assert.Contains(spans, s => s.DisplayName == "maskformer.encode" && s.ParentSpanId == frame.SpanId);
        }
    }

    [Fact]
    public async Task SegmentStream_CancelledWithFramesUnanswered_EveryFrameSpanEndsAndIsCounted()
    {
        // The model run is paused under the first frame, so the other seven wait in the stream, unanswered,
        // when the client goes away, however fast the machine (a fake session: the one thing faked here).
        var sessions = new FaultInjectingSessionFactory();
        await using var server = await TelemetryServer.StartAsync("traced", ["--MaskFormer:Telemetry:StreamFrameSampleInterval=1"], services => services.AddSingleton<IModelSessionFactory>(sessions));
        var session = Assert.Single(sessions.Created);
        var (traceId, _, headers) = TelemetryServer.ClientTrace();
        using var cancellation = new CancellationTokenSource();
        session.Pause();
        try
        {
            using var call = server.Client.SegmentStream(headers, cancellationToken: cancellation.Token);
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { Tasks = { SegmentationTask.Semantic }, MaxInFlight = 1, StatusIntervalMs = 20 } });
            for (var i = 0; i < 8; i++)
            {
                await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = (ulong)i, Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[i % 6]) } });
            }

            // Statuses come while the writer waits: read them until the server holds all eight frames.
            while (await call.ResponseStream.MoveNext(CancellationToken.None) && call.ResponseStream.Current.Status?.FramesReceived != 8)
            {
            }

            Assert.Equal(8ul, call.ResponseStream.Current.Status?.FramesReceived);
            await cancellation.CancelAsync();
        }
        finally
        {
            session.Resume();
        }

        // Only ended spans are exported: all eight must come. The frames already started when the client went
        // (the one in the paused run; in one CI run also the next, started before the cancel reached the
        // server) may still finish with a result; every other is skipped because the stream ended.
        var spans = await server.SpansAsync(traceId, s => s.Count(x => x.DisplayName == "maskformer.frame") == 8 && s.Any(x => x.DisplayName == "maskformer.v1.SegmentationService/SegmentStream"));
        var frames = spans.Where(s => s.DisplayName == "maskformer.frame").OrderBy(f => (long)f.GetTagItem("maskformer.frame.id")!).ToList();
        Assert.Equal(Enumerable.Range(0, 8).Select(i => (long)i), frames.Select(f => (long)f.GetTagItem("maskformer.frame.id")!));
        var finished = frames.TakeWhile(f => (string?)f.GetTagItem("maskformer.frame.outcome") == "result").Count();
        Assert.True(finished <= 2, SpanTree.Render(spans));
        Assert.All(frames.Skip(finished), f => Assert.True((string?)f.GetTagItem("maskformer.frame.skip_reason") == "stream_ended", SpanTree.Render(spans)));
    }

    [Fact]
    public async Task SegmentStream_SampleIntervalTwo_ExportsEveryOtherFrameAndNothingUnderTheOthers()
    {
        await using var server = await TelemetryServer.StartAsync("sampled", ["--MaskFormer:Telemetry:StreamFrameSampleInterval=2"]);
        var (traceId, _, headers) = TelemetryServer.ClientTrace();
        using (var call = server.Client.SegmentStream(headers))
        {
            for (var i = 0; i < 3; i++)
            {
                await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = (ulong)i, Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[i]) } });
            }

            await call.RequestStream.CompleteAsync();
            await foreach (var _ in call.ResponseStream.ReadAllAsync())
            {
            }
        }

        var spans = await server.SpansAsync(traceId, s => s.Any(x => x.DisplayName == "maskformer.v1.SegmentationService/SegmentStream"));
        await Task.Delay(500);
        spans = server.AllSpans().Where(s => s.TraceId == traceId).ToList();
        output.WriteLine(SpanTree.Render(spans));

        Assert.Equal([0L, 2L], spans.Where(s => s.DisplayName == "maskformer.frame").Select(f => f.GetTagItem("maskformer.frame.id")).Order());
        Assert.Equal(2, spans.Count(s => s.DisplayName == "maskformer.segment"));
        Assert.Equal(2, spans.Count(s => s.DisplayName == "maskformer.model_run"));
    }

    [Fact]
    public async Task Segment_ThreeCallsBatchedTogether_OneModelRunSpanLinkedToEveryRequest()
    {
        await using var server = await TelemetryServer.StartAsync("batched", ["--MaskFormer:Inference:MaxBatchSize=3", "--MaskFormer:Inference:MaxQueueDelay=00:00:10", "--MaskFormer:Inference:WarmUp=false"]);
        var traces = Enumerable.Range(0, 3).Select(_ => TelemetryServer.ClientTrace()).ToList();

        var responses = await Task.WhenAll(traces.Select(trace =>
            server.Client.SegmentAsync(new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) }, trace.Headers).ResponseAsync));

        Assert.All(responses, r => Assert.Equal(3u, r.Timings.BatchSize));
        var segments = new List<Activity>();
        var all = new List<Activity>();
        foreach (var trace in traces)
        {
            var spans = await server.SpansAsync(trace.TraceId, s => s.Any(x => x.DisplayName == "maskformer.v1.SegmentationService/Segment"));
            segments.Add(Assert.Single(spans, s => s.DisplayName == "maskformer.segment"));
            all.AddRange(spans);
        }

        var run = Assert.Single(all, s => s.DisplayName == "maskformer.model_run");
        output.WriteLine(SpanTree.Render(all.Where(s => s.TraceId == run.TraceId).ToList()));
        Assert.Equal(3, run.GetTagItem("maskformer.batch.size"));
        Assert.Equal("cpu", run.GetTagItem("maskformer.device"));
        Assert.Equal("batched", run.GetTagItem("maskformer.model.name"));
        Assert.Equal(segments.Select(s => $"{s.TraceId}-{s.SpanId}").Order(), run.Links.Select(l => $"{l.Context.TraceId}-{l.Context.SpanId}").Order());
        Assert.Contains(segments, s => s.SpanId == run.ParentSpanId);
    }
}
