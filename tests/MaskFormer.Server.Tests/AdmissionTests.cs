using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Sessions;
using MaskFormer.Server.Hosting;
using MaskFormer.Server.Streaming;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace MaskFormer.Server.Tests;

/// <summary>
/// Admission control and overload semantics over real HTTP/2 with the committed model, each on a server
/// of its own with small limits: a flood of large images is queued or answered RESOURCE_EXHAUSTED with
/// RetryInfo and nothing else; the concurrency and pixel bounds hold (read from the gate's counters, not
/// from timing); stream frames wait for a full engine queue instead of failing. In the server collection
/// so their servers never load the machine while the shared server's stream tests run.
/// </summary>
[Collection(ServerTestGroup.Name)]
public sealed class AdmissionTests
{
    private const int Side = 1024;

    [Fact]
    public async Task Segment_FloodOfLargeImagesOverTheLimits_OkOrResourceExhaustedWithRetryInfo_BoundsHeld()
    {
        await using var server = await StartAsync(
            "--MaskFormer:Admission:MaxConcurrency=1",
            "--MaskFormer:Admission:MaxPixelsInFlight=2000000",
            "--MaskFormer:Admission:MaxWaiting=2",
            "--MaskFormer:Admission:MaxWait=00:05:00",
            "--MaskFormer:Admission:RetryAfter=00:00:00.750");
        var gate = server.Engine.Admission;

        // The one slot is taken (as a long decode would take it) until every call of the flood has arrived.
        var holder = await gate.EnterAsync(1, waitAsLongAsNeeded: false, CancellationToken.None);
        var flood = Enumerable.Range(0, 16).Select(i => CallAsync(server.Client, LargeFrame(i))).ToArray();
        await WaitUntilAsync(() => gate.GetCounters() is { Rejected: 14, Waiting: 2 });
        holder.Dispose();
        var statuses = await Task.WhenAll(flood);

        var counters = gate.GetCounters();
        var refused = statuses.Where(s => s.Code == StatusCode.ResourceExhausted).ToArray();
        Assert.All(statuses, s => Assert.Contains(s.Code, new[] { StatusCode.OK, StatusCode.ResourceExhausted }));
        Assert.All(refused, s => Assert.Equal(TimeSpan.FromMilliseconds(750), s.RetryDelay));
        Assert.Equal(14, refused.Length);
        Assert.Equal(2, statuses.Count(s => s.Code == StatusCode.OK));
        Assert.Equal(1, counters.PeakRunning);
        Assert.InRange(counters.PeakPixelsInFlight, Side * Side, 2_000_000);
        Assert.Equal(0, counters.Running);
        Assert.Equal(0, counters.PixelsInFlight);
    }

    [Fact]
    public async Task Segment_FloodWithinTheWaitLimit_EveryCallQueuedAndAnswered_ConcurrencyBoundHeld()
    {
        await using var server = await StartAsync(
            "--MaskFormer:Admission:MaxConcurrency=2",
            "--MaskFormer:Admission:MaxWait=00:05:00");
        var gate = server.Engine.Admission;

        var holders = new[] { await gate.EnterAsync(1, false, CancellationToken.None), await gate.EnterAsync(1, false, CancellationToken.None) };
        var flood = Enumerable.Range(0, 12).Select(i => CallAsync(server.Client, LargeFrame(i))).ToArray();
        await WaitUntilAsync(() => gate.GetCounters().Waiting == 12);
        foreach (var holder in holders)
        {
            holder.Dispose();
        }

        var statuses = await Task.WhenAll(flood);

        var counters = gate.GetCounters();
        Assert.All(statuses, s => Assert.Equal(StatusCode.OK, s.Code));
        Assert.Equal(12, counters.Waited);
        Assert.Equal(2, counters.PeakRunning);
        Assert.Equal(0, counters.Rejected);
    }

    [Theory]
    [InlineData(OverloadPolicy.Queue)]
    [InlineData(OverloadPolicy.DropOldest)]
    [InlineData(OverloadPolicy.LatestOnly)]
    public async Task SegmentStream_TinyEngineQueue_EveryFrameAnsweredOnce_NeverResourceExhausted(OverloadPolicy policy)
    {
        // One place in the engine's queue for three streams of up to eight frames in flight each: the
        // queue is full most of the time, and frames wait for it.
        var sessions = new FaultInjectingSessionFactory();
        await using var server = await StartAsync(
            services => services.AddSingleton<IModelSessionFactory>(sessions),
            "--MaskFormer:Inference:MaxQueueSize=1",
            "--MaskFormer:Inference:MaxBatchSize=1",
            "--MaskFormer:Admission:MaxConcurrency=2");
        const int Frames = 24;
        var gate = server.Engine.Admission;

        // The gate's slots are taken until each stream's first frame waits for one (a stream starts one
        // frame before its first result) and, under DROP_OLDEST and LATEST_ONLY, until every frame has been
        // sent: the frames behind the first then overflow the stream's buffer for certain, so skips do not
        // hang on how fast this machine happens to be (a fast run once skipped nothing).
        var holders = new[] { await gate.EnterAsync(1, false, CancellationToken.None), await gate.EnterAsync(1, false, CancellationToken.None) };
        var sent = Enumerable.Range(0, 3).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var streaming = Enumerable.Range(0, 3).Select(s => StreamAsync(server.Client, policy, Frames, sent[s])).ToArray();
        await WaitUntilAsync(() => gate.GetCounters().Waiting == 3);
        if (policy != OverloadPolicy.Queue)
        {
            await Task.WhenAll(sent.Select(s => s.Task)).WaitAsync(TimeSpan.FromSeconds(60));
        }

        // The model run is paused as the gate opens: of the streams' first frames one runs, one is queued
        // and the third finds the queue full, for certain (under LATEST_ONLY only six frames reach it).
        var session = Assert.Single(sessions.Created);
        session.Pause();
        try
        {
            foreach (var holder in holders)
            {
                holder.Dispose();
            }

            await WaitUntilAsync(() => server.Engine.Models[0].GetCounters().WaitedForRoom > 0 && session.PausedRuns == 1);
        }
        finally
        {
            session.Resume();
        }

        var streams = await Task.WhenAll(streaming);

        var scheduler = server.Engine.Models[0].GetCounters();
        Assert.True(scheduler.WaitedForRoom > 0, "no frame found the engine queue full");
        foreach (var answers in streams)
        {
            Assert.Equal(Enumerable.Range(0, Frames).Select(i => (ulong)i), answers.Select(a => a.FrameId));
            Assert.DoesNotContain(answers, a => a.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Error);
            var skipped = answers.Where(a => a.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Skipped).Select(a => a.Skipped.Reason).ToArray();
            switch (policy)
            {
                case OverloadPolicy.Queue:
                    Assert.All(answers, a => Assert.Equal(SegmentStreamResponse.OutcomeOneofCase.Result, a.OutcomeCase));
                    break;
                case OverloadPolicy.DropOldest:
                    Assert.All(skipped, reason => Assert.Equal(SkipReason.DroppedOldest, reason));
                    break;
                default:
                    Assert.All(skipped, reason => Assert.Equal(SkipReason.Superseded, reason));
                    Assert.Equal(SegmentStreamResponse.OutcomeOneofCase.Result, answers[^1].OutcomeCase);
                    break;
            }
        }

        if (policy != OverloadPolicy.Queue)
        {
            Assert.Contains(streams.SelectMany(a => a), a => a.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Skipped);
        }
    }

    [Fact]
    public async Task SegmentStream_RetryableFrameError_CarriesRetryInfo_BadFrameCarriesBadRequestOnly()
    {
        // Frames go to a real engine that is still loading (never loaded here): UNAVAILABLE, retry shortly.
        await using var server = await StartAsync(
            services => services.Replace(ServiceDescriptor.Singleton<IFrameSegmenter>(sp => new EngineFrameSegmenter(ActivatorUtilities.CreateInstance<SegmentationEngine>(sp)))));
        using var call = server.Client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(2));
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = 1, Image = LargeFrame(0) } });
        await call.RequestStream.CompleteAsync();
        var loading = Assert.Single(await call.ResponseStream.ReadAllAsync().ToArrayAsync());

        await using var healthy = await StartAsync();
        using var badCall = healthy.Client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(2));
        await badCall.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = 2, Image = new Contracts.V1.Image { Encoded = ByteString.CopyFromUtf8("not an image") } } });
        await badCall.RequestStream.CompleteAsync();
        var invalid = Assert.Single(await badCall.ResponseStream.ReadAllAsync().ToArrayAsync());

        Assert.Equal((int)StatusCode.Unavailable, loading.Error.Code);
        var status = Google.Rpc.Status.Parser.ParseFrom(loading.Error.StatusDetails);
        Assert.Equal(loading.Error.Code, status.Code);
        Assert.Equal(TimeSpan.FromSeconds(1), status.GetDetail<Google.Rpc.RetryInfo>().RetryDelay.ToTimeSpan());
        Assert.Equal((int)StatusCode.InvalidArgument, invalid.Error.Code);
        var invalidStatus = Google.Rpc.Status.Parser.ParseFrom(invalid.Error.StatusDetails);
        Assert.Null(invalidStatus.GetDetail<Google.Rpc.RetryInfo>());
        Assert.Equal("image.encoded", Assert.Single(invalidStatus.GetDetail<Google.Rpc.BadRequest>().FieldViolations).Field);
    }

    [Fact]
    public async Task Segment_ThenIdle_MemoryGivenBackOnce_AndAgainOnlyAfterMoreWork()
    {
        // Without warm-up the gate has never been busy, so every return counted below follows a call: with
        // it, a pause in the warm-up's requests could count one return early and leave the last one pending.
        await using var server = await StartAsync("--MaskFormer:Admission:ReturnMemoryAfterIdle=00:00:00.200", "--MaskFormer:Inference:WarmUp=false");
        Assert.Equal(0, server.Engine.MemoryReturns);

        for (var call = 1; call <= 2; call++)
        {
            Assert.Equal(StatusCode.OK, (await CallAsync(server.Client, LargeFrame(call))).Code);
            await WaitUntilAsync(() => server.Engine.MemoryReturns >= call);
            await Task.Delay(1000);

            // One return per idle period: an idle server does not collect over and over.
            Assert.Equal(call, server.Engine.MemoryReturns);
        }
    }

    [Theory]
    [InlineData("MaxConcurrency", "-1")]
    [InlineData("MaxPixelsInFlight", "0")]
    [InlineData("MaxWaiting", "-1")]
    [InlineData("MaxWait", "-00:00:01")]
    [InlineData("RetryAfter", "00:00:00")]
    [InlineData("ReturnMemoryAfterIdle", "-00:00:01")]
    public async Task Start_BadAdmissionSetting_FailsNamingTheSetting(string setting, string value)
    {
        WebApplication? app = null;

        var error = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(async () =>
        {
            app = ServerApp.Build(ServerFixture.Arguments($"--MaskFormer:Admission:{setting}={value}", "--MaskFormer:Inference:WarmUp=false"));
            await app.StartAsync();
        });
        if (app is not null)
        {
            await app.DisposeAsync();
        }

        Assert.Contains($"MaskFormer:Admission:{setting}", error.Message, StringComparison.Ordinal);
    }

    private static Task WaitUntilAsync(Func<bool> condition) => Poll.UntilAsync(condition, "the condition never held within 60 s");

    private static Contracts.V1.Image LargeFrame(int seed)
    {
        var data = new byte[Side * Side * 3];
        new Random(seed).NextBytes(data);
        return new Contracts.V1.Image { Raw = new RawFrame { Width = Side, Height = Side, PixelFormat = PixelFormat.Rgb24, Data = ByteString.CopyFrom(data) } };
    }

    private static async Task<(StatusCode Code, TimeSpan? RetryDelay)> CallAsync(SegmentationService.SegmentationServiceClient client, Contracts.V1.Image image)
    {
        try
        {
            await client.SegmentAsync(new SegmentRequest { Image = image }, deadline: DateTime.UtcNow.AddMinutes(5));
            return (StatusCode.OK, null);
        }
        catch (RpcException error)
        {
            return (error.StatusCode, error.GetRpcStatus()?.GetDetail<Google.Rpc.RetryInfo>()?.RetryDelay.ToTimeSpan());
        }
    }

    private static async Task<SegmentStreamResponse[]> StreamAsync(SegmentationService.SegmentationServiceClient client, OverloadPolicy policy, int frames, TaskCompletionSource sent)
    {
        using var call = client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(5));
        var reading = Task.Run(async () => await call.ResponseStream.ReadAllAsync().ToArrayAsync());
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { OverloadPolicy = policy, MaxInFlight = 8 } });
        for (var i = 0; i < frames; i++)
        {
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = (ulong)i, Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[i % 8]) } });
        }

        sent.TrySetResult();
        await call.RequestStream.CompleteAsync();
        return await reading;
    }

    private static Task<Server> StartAsync(params string[] extra) => StartAsync(null, extra);

    private static async Task<Server> StartAsync(Action<IServiceCollection>? services, params string[] extra)
    {
        var app = ServerApp.Build(ServerFixture.Arguments(extra), builder => services?.Invoke(builder.Services));
        await app.StartAsync();
        var channel = GrpcChannel.ForAddress(ServerFixture.GrpcAddress(app));
        await ServerFixture.WaitUntilServingAsync(channel);
        return new Server(app, channel);
    }

    private sealed class Server(WebApplication app, GrpcChannel channel) : IAsyncDisposable
    {
        public SegmentationService.SegmentationServiceClient Client { get; } = new(channel);

        public SegmentationEngine Engine => app.Services.GetRequiredService<SegmentationEngine>();

        public async ValueTask DisposeAsync()
        {
            channel.Dispose();
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}
