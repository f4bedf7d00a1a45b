using Grpc.Core;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Server.Streaming;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Server.Tests.Observability;

[Collection(TelemetryTestGroup.Name)]
public sealed class LoggingTests
{
    [Fact]
    public async Task SegmentStream_FrameThrowsUnexpectedly_LoggedOnceWithStackAndItsCall()
    {
        await using var server = await TelemetryServer.StartAsync("faulty", ["--Logging:LogLevel:Default=Information"], services => services.Replace(ServiceDescriptor.Singleton<IFrameSegmenter, ThrowingFrameSegmenterFake>()));
        var (traceId, _, headers) = TelemetryServer.ClientTrace();
        var answers = new List<SegmentStreamResponse>();
        using (var call = server.Client.SegmentStream(headers))
        {
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = 7, Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) } });
            await call.RequestStream.CompleteAsync();
            await foreach (var answer in call.ResponseStream.ReadAllAsync())
            {
                answers.Add(answer);
            }
        }

        await WaitForAsync(() => server.Logs.Entries.Any(e => e.EventId.Name == "Call" && e.Message.Contains("SegmentStream", StringComparison.Ordinal)));
        Assert.Equal((int)StatusCode.Internal, Assert.Single(answers).Error.Code);
        var errors = server.Logs.Entries.Where(e => e.Level >= LogLevel.Error).ToList();
        var logged = Assert.Single(errors);
        Assert.Equal("FrameFailed", logged.EventId.Name);
        Assert.Contains("Frame 7 of /maskformer.v1.SegmentationService/SegmentStream", logged.Message, StringComparison.Ordinal);
        Assert.IsType<InvalidOperationException>(logged.Exception);
        Assert.Contains(nameof(ThrowingFrameSegmenterFake), logged.Exception!.StackTrace, StringComparison.Ordinal);
        Assert.Equal(traceId, logged.TraceId);
    }

    [Fact]
    public async Task SegmentStream_HundredClientResets_NoErrorLevelLine()
    {
        await using var server = await TelemetryServer.StartAsync("reset", ["--Logging:LogLevel:Default=Debug"]);
        for (var i = 0; i < 100; i++)
        {
            var call = server.Client.SegmentStream();
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = (ulong)i, Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[i % 4]) } });
            call.Dispose();
        }

        await WaitForAsync(() => server.Logs.Entries.Count(e => e.EventId.Name == "Call" && e.Message.Contains("SegmentStream", StringComparison.Ordinal)) >= 100);
        var errors = server.Logs.Entries.Where(e => e.Level >= LogLevel.Error).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors.Select(e => $"{e.Category} {e.Level} {e.Message} {e.Exception}")));
        Assert.Contains(server.Logs.Entries, e => e.EventId.Name == "Call" && e.Message.Contains(" Cancelled ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Segment_RefusedOutsideTheInterceptors_LoggedWithTheStatusTheClientGot()
    {
        // A message over MaxReceiveMessageSize is refused by gRPC itself, and a missing token by the
        // authentication middleware: neither reaches the telemetry interceptor, both are counted.
        var tokens = Path.GetTempFileName();
        await File.WriteAllTextAsync(tokens, "a-token-for-this-test\n");
        try
        {
            await using var server = await TelemetryServer.StartAsync("refused", ["--Logging:LogLevel:Default=Information", "--MaskFormer:Grpc:MaxReceiveMessageSize=1048576", "--MaskFormer:Grpc:MaxSendMessageSize=2048", $"--MaskFormer:Security:TokensFile={tokens}"]);
            var authorized = new Metadata { { "authorization", "Bearer a-token-for-this-test" } };
            var large = new SegmentRequest { Image = new Image { Raw = new RawFrame { Width = 1100, Height = 1000, PixelFormat = PixelFormat.Gray8, Data = Google.Protobuf.ByteString.CopyFrom(new byte[1_100_000]) } } };

            var tooLarge = await Assert.ThrowsAsync<RpcException>(() => server.Client.SegmentAsync(large, authorized).ResponseAsync);
            var noToken = await Assert.ThrowsAsync<RpcException>(() => server.Client.SegmentAsync(new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) }).ResponseAsync);

            // An answer over MaxSendMessageSize is refused by gRPC after the interceptors: counted as such, not as OK.
            var everything = new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]), Tasks = { SegmentationTask.Semantic, SegmentationTask.Instance, SegmentationTask.Panoptic } };
            var answerTooLarge = await Assert.ThrowsAsync<RpcException>(() => server.Client.SegmentAsync(everything, authorized).ResponseAsync);

            Assert.Equal(StatusCode.ResourceExhausted, tooLarge.StatusCode);
            Assert.Equal(StatusCode.Unauthenticated, noToken.StatusCode);
            Assert.Equal(StatusCode.ResourceExhausted, answerTooLarge.StatusCode);
            await WaitForAsync(() => server.Logs.Entries.Count(e => e.EventId.Name == "Call" && e.Message.StartsWith("/maskformer.v1.SegmentationService/Segment ", StringComparison.Ordinal)) >= 3);
            var calls = server.Logs.Entries.Where(e => e.EventId.Name == "Call").Select(e => e.Message).ToList();
            Assert.Equal(2, calls.Count(m => m.StartsWith("/maskformer.v1.SegmentationService/Segment ResourceExhausted in ", StringComparison.Ordinal)));
            Assert.Contains(calls, m => m.StartsWith("/maskformer.v1.SegmentationService/Segment Unauthenticated in ", StringComparison.Ordinal));
            Assert.DoesNotContain(calls, m => m.StartsWith("/maskformer.v1.SegmentationService/Segment OK ", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(tokens);
        }
    }

    [Fact]
    public async Task Segment_OverTheCallLimit_LoggedAndTracedInTheCallersTrace_WithTheStatusTheClientGot()
    {
        // The call limit answers before gRPC reads the message, so outside the interceptors; the call is
        // still logged (event 300), counted and traced, as when the limit was an interceptor.
        await using var server = await TelemetryServer.StartAsync("limited", ["--Logging:LogLevel:Default=Information", "--MaskFormer:Grpc:MaxConcurrentCalls=1"]);
        var image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]);
        using var stream = server.Client.SegmentStream();
        await stream.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = 1, Image = image } });
        Assert.True(await stream.ResponseStream.MoveNext(CancellationToken.None));
        var (traceId, clientSpanId, headers) = TelemetryServer.ClientTrace();

        var refused = await Assert.ThrowsAsync<RpcException>(() => server.Client.SegmentAsync(new SegmentRequest { Image = image }, headers).ResponseAsync);

        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.GetRpcStatus()!.GetDetail<Google.Rpc.RetryInfo>().RetryDelay.ToTimeSpan());
        var spans = await server.SpansAsync(traceId, s => s.Any(span => span.ParentSpanId == clientSpanId));
        var call = Assert.Single(spans, span => span.ParentSpanId == clientSpanId);
        Assert.Equal("maskformer.v1.SegmentationService/Segment", call.DisplayName);
        Assert.Equal((int)StatusCode.ResourceExhausted, call.GetTagItem("rpc.grpc.status_code"));
        await WaitForAsync(() => server.Logs.Entries.Any(e => e.EventId.Name == "Call" && e.Message.StartsWith("/maskformer.v1.SegmentationService/Segment ", StringComparison.Ordinal)));
        var logged = Assert.Single(server.Logs.Entries, e => e.EventId.Name == "Call" && e.Message.StartsWith("/maskformer.v1.SegmentationService/Segment ", StringComparison.Ordinal));
        Assert.StartsWith("/maskformer.v1.SegmentationService/Segment ResourceExhausted in ", logged.Message, StringComparison.Ordinal);
        Assert.Equal(traceId, logged.TraceId);
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        var until = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < until, "timed out waiting for the logs");
            await Task.Delay(50);
        }
    }

    /// <summary>A fake: a frame whose processing throws, a fault no real request can cause.</summary>
    private sealed class ThrowingFrameSegmenterFake : IFrameSegmenter
    {
        public Task<SegmentationResult> SegmentAsync(SegmentationRequest request, CancellationToken cancellationToken) => Fail();

        private static async Task<SegmentationResult> Fail()
        {
            await Task.Yield();
            throw new InvalidOperationException("the fake session failed");
        }
    }
}
