using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;
using MaskFormer.Server.Hosting;
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
}
