using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Admission;
using MaskFormer.Server.Hosting;
using MaskFormer.Server.Limits;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Tests;

/// <summary>
/// Transport limits, each on a server of its own: concurrent calls, the default deadline, Kestrel agreeing
/// with gRPC. In the server collection so their extra servers never load the machine while the shared
/// server's timing-sensitive stream tests run.
/// </summary>
[Collection(ServerTestGroup.Name)]
public sealed class LimitsTests
{
    [Fact]
    public async Task Limits_OneCallAllowed_SecondCallResourceExhaustedWithRetryInfo_HealthStillAnswers_DefaultDeadlineApplies()
    {
        var (app, address) = await ServerFixture.StartAsync(ServerFixture.Arguments(
            "--MaskFormer:Grpc:MaxConcurrentCalls=1",
            "--MaskFormer:Grpc:DefaultDeadline=00:00:00.001"));
        await using var _ = app;
        using var channel = GrpcChannel.ForAddress(address);
        await ServerFixture.WaitUntilServingAsync(channel);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var request = new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) };

        using (var stream = client.SegmentStream())
        {
            // The stream holds the one slot once its first answer has come back.
            await stream.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = 1, Image = request.Image } });
            Assert.True(await stream.ResponseStream.MoveNext(CancellationToken.None));

            var refused = await Assert.ThrowsAsync<RpcException>(() => client.SegmentAsync(request, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
            Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(1), refused.GetRpcStatus()!.GetDetail<Google.Rpc.RetryInfo>().RetryDelay.ToTimeSpan());
            var health = await new Grpc.Health.V1.Health.HealthClient(channel).CheckAsync(new HealthCheckRequest());
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);

            await stream.RequestStream.CompleteAsync();
            while (await stream.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
        }

        var answered = await client.SegmentAsync(request, deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.True(answered.Width > 0);
        var late = await Assert.ThrowsAsync<RpcException>(() => client.SegmentAsync(request).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, late.StatusCode);
    }

    [Fact]
    public async Task Limits_MethodPathInAnotherCase_StillCountedAgainstTheCallLimit()
    {
        // Routing ignores the path's case: "/MASKFORMER.V1.SEGMENTATIONSERVICE/ListModels" reaches ListModels,
        // and must be limited as it (the limit once compared the raw path with "/maskformer.v1.").
        var (app, address) = await ServerFixture.StartAsync(ServerFixture.Arguments("--MaskFormer:Grpc:MaxConcurrentCalls=1"));
        await using var _ = app;
        using var channel = GrpcChannel.ForAddress(address);
        await ServerFixture.WaitUntilServingAsync(channel);
        using var stream = new SegmentationService.SegmentationServiceClient(channel).SegmentStream();
        await stream.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = 1, Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) } });
        Assert.True(await stream.ResponseStream.MoveNext(CancellationToken.None));

        using var http = new HttpClient(new SocketsHttpHandler());
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(address, "/MASKFORMER.V1.SEGMENTATIONSERVICE/ListModels"))
        {
            Version = System.Net.HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(new byte[5]), // one empty ListModelsRequest
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        request.Headers.TryAddWithoutValidation("te", "trailers");
        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();
        var status = response.TrailingHeaders.TryGetValues("grpc-status", out var trailer) ? trailer.Single()
            : response.Headers.TryGetValues("grpc-status", out var header) ? header.Single() : "none";

        Assert.Equal(((int)StatusCode.ResourceExhausted).ToString(System.Globalization.CultureInfo.InvariantCulture), status);
    }

    [Fact]
    public async Task Segment_OverTheCallLimit_RefusedBeforeItsUploadIsRead_HoldingNoRequestBytes()
    {
        // Two calls wait in the engine and hold the limit of 2; a third starts a 4 MB upload and sends only
        // its first 64 bytes. Only a refusal that reads no message can answer it: counted once gRPC had
        // read the message (in an interceptor), the call got no answer while its upload waited.
        await using var server = await LimitedServer.StartAsync(limit: 2);
        await using var held = server.Hold(2);
        await server.WaitUntilWaitingAsync(2);
        var heldBytes = server.Budget.InUse;
        using var http = new HttpClient(new SocketsHttpHandler());
        await using var upload = SlowUpload.Start(http, server.Address, "Segment", new SegmentRequest { Image = Gray(2048) }, sentFirst: 64);

        var answer = await upload.AnswerAsync().WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(((int)StatusCode.ResourceExhausted).ToString(System.Globalization.CultureInfo.InvariantCulture), answer.Status);
        Assert.Contains("limit of 2 calls (MaskFormer:Grpc:MaxConcurrentCalls)", answer.Message, StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromSeconds(1), answer.Details!.GetDetail<Google.Rpc.RetryInfo>().RetryDelay.ToTimeSpan());
        Assert.InRange(upload.SentBytes, 0, 64); // the answer may overtake the first 64 bytes' flush
        Assert.True(upload.BodyBytes > 4_000_000);
        Assert.Equal(heldBytes, server.Budget.InUse);
        Assert.Equal(1, server.Limit.Refused);
        Assert.All(await held.ReleaseAsync(), code => Assert.Equal(StatusCode.OK, code));
    }

    [Fact]
    public async Task Limits_CallsCancelledTimedOutResetRefusedOrFailed_GiveTheirSlotsBack_FreshCallsAllAdmitted()
    {
        await using var server = await LimitedServer.StartAsync(limit: 2, "--MaskFormer:Grpc:MaxReceiveMessageSize=1048576");
        using var http = new HttpClient(new SocketsHttpHandler());
        for (var round = 0; round < 3; round++)
        {
            // Cancelled by the client while held in the engine, with a call refused meanwhile.
            await using (var held = server.Hold(2))
            {
                await server.WaitUntilWaitingAsync(2);
                var refused = await Assert.ThrowsAsync<RpcException>(() => server.Client.SegmentAsync(new SegmentRequest { Image = Gray(320) }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
                Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
                Assert.All(await held.CancelAsync(), code => Assert.Equal(StatusCode.Cancelled, code));
            }

            await server.WaitUntilNoSlotHeldAsync("client cancellations");

            // Deadlines passing while held in the engine.
            var late = Enumerable.Range(0, 2).Select(_ => server.CallAsync(DateTime.UtcNow.AddSeconds(2), CancellationToken.None)).ToArray();
            await server.WaitUntilWaitingAsync(2);
            Assert.All(await Task.WhenAll(late), code => Assert.Equal(StatusCode.DeadlineExceeded, code));
            await server.WaitUntilNoSlotHeldAsync("deadlines");

            // Uploads reset by the client before their message is in.
            using (var reset = new CancellationTokenSource())
            {
                var uploads = Enumerable.Range(0, 2).Select(_ => SlowUpload.Start(http, server.Address, "Segment", new SegmentRequest { Image = Gray(320) }, sentFirst: 64, cancellationToken: reset.Token)).ToArray();
                var limit = server.Limit;
                await Poll.UntilAsync(() => limit.Running == 2, "the uploads never took their slots");
                await reset.CancelAsync();
                foreach (var upload in uploads)
                {
                    await Assert.ThrowsAnyAsync<OperationCanceledException>(upload.AnswerAsync);
                    await upload.DisposeAsync();
                }
            }

            await server.WaitUntilNoSlotHeldAsync("resets");

            // Failed by gRPC while reading (a message over the receive limit) and by the service.
            var tooLarge = await Assert.ThrowsAsync<RpcException>(() => server.Client.SegmentAsync(new SegmentRequest { Image = Gray(1100) }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
            Assert.Equal(StatusCode.ResourceExhausted, tooLarge.StatusCode);
            var invalid = await Assert.ThrowsAsync<RpcException>(() => server.Client.SegmentAsync(new SegmentRequest(), deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, invalid.StatusCode);
            await server.WaitUntilNoSlotHeldAsync("failed calls");
        }

        await using var fresh = server.Hold(2);
        await server.WaitUntilWaitingAsync(2);
        Assert.All(await fresh.ReleaseAsync(), code => Assert.Equal(StatusCode.OK, code));
        Assert.Equal(3, server.Limit.Refused);
        await server.WaitUntilNoSlotHeldAsync("answered calls");
        Assert.Equal(0, server.Budget.InUse);
    }

    [Fact]
    public async Task Segment_OverTheCallLimitWhileDraining_UnavailableAsEveryNewCall()
    {
        // The drain's interceptor answered before the limit's did: a client over the limit of a server that
        // is stopping is still told to go elsewhere, not to retry here.
        await using var server = await LimitedServer.StartAsync(limit: 1);
        await using var held = server.Hold(1);
        await server.WaitUntilWaitingAsync(1);
        server.StopApplication();

        // On a connection of its own: the drain sends the held call's connection a GOAWAY meanwhile.
        using var channel = GrpcChannel.ForAddress(server.Address);
        var refused = await Assert.ThrowsAsync<RpcException>(() => new SegmentationService.SegmentationServiceClient(channel).SegmentAsync(new SegmentRequest { Image = Gray(320) }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);

        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        Assert.Contains("shutting down", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(1, server.Limit.Running);
        Assert.Equal(1, server.Limit.Refused);
    }

    [Fact]
    public async Task Limits_FromConfiguration_KestrelAgreesWithGrpc()
    {
        var (app, _) = await ServerFixture.StartAsync(ServerFixture.Arguments(
            "--MaskFormer:Grpc:MaxReceiveMessageSize=1048576",
            "--MaskFormer:Grpc:MaxStreamsPerConnection=7",
            "--MaskFormer:Grpc:MaxConnections=9",
            "--MaskFormer:Inference:WarmUp=false"));
        await using var _ = app;

        var kestrel = app.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits;
        var grpc = app.Services.GetRequiredService<IOptions<Grpc.AspNetCore.Server.GrpcServiceOptions>>().Value;

        Assert.Equal(1048576 + 5, kestrel.MaxRequestBodySize);
        Assert.Equal(7, kestrel.Http2.MaxStreamsPerConnection);
        Assert.Equal(9, kestrel.MaxConcurrentConnections);
        Assert.Equal(1048576, grpc.MaxReceiveMessageSize);
    }

    [Fact]
    public async Task Limits_StreamLongerThanTheMessageLimit_EveryFrameAnswered()
    {
        // Kestrel's request-body limit follows the message limit for unary calls only; a stream's body is
        // as long as the video, so gRPC lifts the limit for it.
        var (app, address) = await ServerFixture.StartAsync(ServerFixture.Arguments("--MaskFormer:Grpc:MaxReceiveMessageSize=1048576"));
        await using var _ = app;
        using var channel = GrpcChannel.ForAddress(address);
        await ServerFixture.WaitUntilServingAsync(channel);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var frame = new RawFrame { Width = 400, Height = 400, PixelFormat = PixelFormat.Rgb24, Data = Google.Protobuf.ByteString.CopyFrom(new byte[400 * 400 * 3]) };

        using var stream = client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(2));
        for (var i = 0; i < 4; i++)
        {
            await stream.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = (ulong)i, Image = new Contracts.V1.Image { Raw = frame } } });
        }

        await stream.RequestStream.CompleteAsync();
        var answers = await stream.ResponseStream.ReadAllAsync().ToArrayAsync();

        Assert.Equal(4, answers.Count(a => a.Result is not null));
    }

    [Fact]
    public async Task Limits_StreamMessageOverTheReceiveLimit_FramesBeforeItAnsweredThenResourceExhausted()
    {
        // Batches of 8 that three frames never fill wait 2 s, so the frames are still in the engine when the
        // message over the limit arrives. They used to be dropped with the call (no answer at all).
        var (app, address) = await ServerFixture.StartAsync(ServerFixture.Arguments(
            "--MaskFormer:Grpc:MaxReceiveMessageSize=1048576",
            "--MaskFormer:Inference:MaxBatchSize=8",
            "--MaskFormer:Inference:MaxQueueDelay=00:00:02",
            "--MaskFormer:Inference:WarmUp=false"));
        await using var _ = app;
        using var channel = GrpcChannel.ForAddress(address);
        await ServerFixture.WaitUntilServingAsync(channel);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var frame = new RawFrame { Width = 200, Height = 200, PixelFormat = PixelFormat.Rgb24, Data = Google.Protobuf.ByteString.CopyFrom(new byte[200 * 200 * 3]) };
        var tooLarge = new RawFrame { Width = 800, Height = 800, PixelFormat = PixelFormat.Rgb24, Data = Google.Protobuf.ByteString.CopyFrom(new byte[800 * 800 * 3]) };

        using var stream = client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(2));
        for (var i = 0; i < 3; i++)
        {
            await stream.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = (ulong)i, Image = new Contracts.V1.Image { Raw = frame } } });
        }

        // Not awaited before reading: the server stops reading at the message's length prefix, so the rest
        // of it waits on HTTP/2 flow control until the call ends.
        var sending = stream.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = 3, Image = new Contracts.V1.Image { Raw = tooLarge } } });
        var answers = new List<SegmentStreamResponse>();
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await foreach (var answer in stream.ResponseStream.ReadAllAsync())
            {
                answers.Add(answer);
            }
        });

        // The rest of the message the server refused is given up with the call.
        stream.Dispose();
        await Assert.ThrowsAnyAsync<Exception>(() => sending);

        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Equal([0ul, 1ul, 2ul], answers.Where(a => a.Result is not null).Select(a => a.FrameId));
    }

    [Fact]
    public async Task Limits_StreamAnswerOverTheSendLimit_ThatFrameFailsResourceExhaustedAndTheStreamGoesOn()
    {
        var (app, address) = await ServerFixture.StartAsync(ServerFixture.Arguments("--MaskFormer:Grpc:MaxSendMessageSize=2048"));
        await using var _ = app;
        using var channel = GrpcChannel.ForAddress(address);
        await ServerFixture.WaitUntilServingAsync(channel);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var small = new Contracts.V1.Image { Raw = new RawFrame { Width = 16, Height = 16, PixelFormat = PixelFormat.Gray8, Data = Google.Protobuf.ByteString.CopyFrom(new byte[16 * 16]) } };
        var large = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]);
        var semantic = new StreamConfig { Tasks = { SegmentationTask.Semantic } };
        var everything = new StreamConfig { Tasks = { SegmentationTask.Semantic, SegmentationTask.Instance, SegmentationTask.Panoptic } };

        // A unary call over the limit fails as a whole: gRPC's own status.
        var unary = await Assert.ThrowsAsync<RpcException>(() => client.SegmentAsync(new SegmentRequest { Image = large, Tasks = { everything.Tasks } }, deadline: DateTime.UtcNow.AddMinutes(1)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, unary.StatusCode);

        using var stream = client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(2));
        var frames = new[] { (semantic, small), (everything, large), (semantic, small) };
        for (var i = 0; i < frames.Length; i++)
        {
            await stream.RequestStream.WriteAsync(new SegmentStreamRequest { Config = frames[i].Item1 });
            await stream.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = (ulong)i, Image = frames[i].Item2 } });
        }

        await stream.RequestStream.CompleteAsync();
        var answers = await stream.ResponseStream.ReadAllAsync().ToArrayAsync();

        Assert.Equal(StatusCode.OK, stream.GetStatus().StatusCode);
        Assert.Equal([0ul, 1ul, 2ul], answers.Select(a => a.FrameId));
        Assert.NotNull(answers[0].Result);
        Assert.Equal((int)StatusCode.ResourceExhausted, answers[1].Error?.Code);
        Assert.Contains("MaskFormer:Grpc:MaxSendMessageSize", answers[1].Error!.Message, StringComparison.Ordinal);
        Assert.NotNull(answers[2].Result);
    }

    [Theory]
    [InlineData("MaxConcurrentCalls", "0")]
    [InlineData("MaxStreamsPerConnection", "0")]
    [InlineData("MaxReceiveMessageSize", "10")]
    [InlineData("MaxRequestBytesInFlight", "1000")]
    [InlineData("MinRequestBytesPerSecond", "-1")]
    [InlineData("DefaultDeadline", "-00:00:01")]
    public async Task Start_BadLimit_FailsNamingTheSetting(string setting, string value)
    {
        WebApplication? app = null;

        var error = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            app = ServerApp.Build(ServerFixture.Arguments($"--MaskFormer:Grpc:{setting}={value}", "--MaskFormer:Inference:WarmUp=false"));
            await app.StartAsync();
        });
        if (app is not null)
        {
            await app.DisposeAsync();
        }


        Assert.Contains($"MaskFormer:Grpc:{setting}", error.Message, StringComparison.Ordinal);
    }

    private static Contracts.V1.Image Gray(int side) => new()
    {
        Raw = new RawFrame { Width = (uint)side, Height = (uint)side, PixelFormat = PixelFormat.Gray8, Data = Google.Protobuf.ByteString.CopyFrom(new byte[side * side]) },
    };

    /// <summary>
    /// A server with a call limit whose engine admits nothing until the test says so (admission's one
    /// slot is taken), so calls wait in it holding their call slots as long as a test needs.
    /// </summary>
    private sealed class LimitedServer : IAsyncDisposable
    {
        private WebApplication _app = null!;
        private GrpcChannel _channel = null!;
        private AdmissionTicket? _engineHeld;

        public Uri Address { get; private set; } = null!;

        public SegmentationService.SegmentationServiceClient Client { get; private set; } = null!;

        public CallLimit Limit => _app.Services.GetRequiredService<CallLimit>();

        public RequestBytesBudget Budget => _app.Services.GetRequiredService<RequestBytesBudget>();

        private AdmissionGate Gate => _app.Services.GetRequiredService<SegmentationEngine>().Admission;

        public static async Task<LimitedServer> StartAsync(int limit, params string[] extra)
        {
            var server = new LimitedServer();
            (server._app, server.Address) = await ServerFixture.StartAsync(ServerFixture.Arguments([
                $"--MaskFormer:Grpc:MaxConcurrentCalls={limit}",
                "--MaskFormer:Grpc:MinRequestBytesPerSecond=0",
                "--MaskFormer:Admission:MaxConcurrency=1",
                "--MaskFormer:Admission:MaxWait=00:05:00",
                "--MaskFormer:Inference:WarmUp=false",
                .. extra]));
            server._channel = GrpcChannel.ForAddress(server.Address);
            await ServerFixture.WaitUntilServingAsync(server._channel);
            server.Client = new SegmentationService.SegmentationServiceClient(server._channel);
            server._engineHeld = await server.Gate.EnterAsync(1, waitAsLongAsNeeded: false, CancellationToken.None);
            return server;
        }

        /// <summary>Starts the drain, as SIGTERM does, while the server goes on serving.</summary>
        public void StopApplication() => _app.Lifetime.StopApplication();

        /// <summary>Starts <paramref name="count"/> calls that wait in the engine until released or cancelled.</summary>
        public HeldCalls Hold(int count) => new(this, count);

        public Task WaitUntilWaitingAsync(int count)
        {
            var gate = Gate;
            return Poll.UntilAsync(() => gate.GetCounters().Waiting == count, $"{count} calls never waited in the engine");
        }

        public Task WaitUntilNoSlotHeldAsync(string after)
        {
            var limit = Limit;
            var gate = Gate;
            return Poll.UntilAsync(() => limit.Running == 0 && gate.GetCounters().Waiting == 0, $"call slots still held after {after}: {limit.Running}");
        }

        public async Task<StatusCode> CallAsync(DateTime deadline, CancellationToken cancellationToken)
        {
            try
            {
                await Client.SegmentAsync(new SegmentRequest { Image = Gray(320) }, deadline: deadline, cancellationToken: cancellationToken);
                return StatusCode.OK;
            }
            catch (RpcException error)
            {
                return error.StatusCode;
            }
        }

        public async ValueTask DisposeAsync()
        {
            _engineHeld?.Dispose();
            _channel.Dispose();
            await _app.DisposeAsync();
        }

        public sealed class HeldCalls : IAsyncDisposable
        {
            private readonly LimitedServer _server;
            private readonly CancellationTokenSource _cancel = new();
            private readonly Task<StatusCode>[] _calls;

            public HeldCalls(LimitedServer server, int count)
            {
                _server = server;
                _calls = Enumerable.Range(0, count).Select(_ => server.CallAsync(DateTime.UtcNow.AddMinutes(5), _cancel.Token)).ToArray();
            }

            /// <summary>Lets the engine admit them (and what comes after), and waits for their answers.</summary>
            public Task<StatusCode[]> ReleaseAsync()
            {
                var held = _server._engineHeld;
                _server._engineHeld = null;
                held?.Dispose();
                return Task.WhenAll(_calls);
            }

            public async Task<StatusCode[]> CancelAsync()
            {
                await _cancel.CancelAsync();
                return await Task.WhenAll(_calls);
            }

            public async ValueTask DisposeAsync()
            {
                await _cancel.CancelAsync();
                await Task.WhenAll(_calls);
                _cancel.Dispose();
            }
        }
    }
}
