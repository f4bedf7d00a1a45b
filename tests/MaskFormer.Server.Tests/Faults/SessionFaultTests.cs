using Grpc.Core;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Sessions;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace MaskFormer.Server.Tests.Faults;

/// <summary>
/// Session faults over real gRPC: the real server and the committed model, with one session wrapped by
/// a fake that throws or hangs on demand (<see cref="FaultInjectingSessionFactory"/>).
/// </summary>
public sealed class SessionFaultTests
{
    [Fact]
    public async Task Segment_OneSessionThrows_OnlyItsRequestsFailAndThePoolKeepsServing()
    {
        var factory = new FaultInjectingSessionFactory();
        await using var server = await FaultServer.StartAsync(factory, "--MaskFormer:Inference:Devices:0:Sessions=2");
        Assert.Equal(2, factory.Created.Count);
        var (faulty, healthy) = (factory.Created[0], factory.Created[1]);
        var healthyBefore = healthy.ServedItems;
        faulty.Fault = SessionFault.Throw;

        // Rounds of concurrent calls until the faulty session has taken some: both workers take batches.
        var codes = new List<StatusCode>();
        for (var round = 0; round < 20 && faulty.FailedItems == 0; round++)
        {
            codes.AddRange(await Task.WhenAll(Enumerable.Range(0, 8).Select(i => server.SegmentStatusAsync(HeldOutSet.ImageFiles[i]))));
        }

        Assert.True(faulty.FailedItems > 0, "the faulty session never took a request");
        Assert.Equal(faulty.FailedItems, codes.Count(c => c == StatusCode.Internal));
        Assert.Equal(codes.Count - faulty.FailedItems, codes.Count(c => c == StatusCode.OK));
        Assert.Equal(healthy.ServedItems - healthyBefore, codes.Count(c => c == StatusCode.OK));

        // A stream served by both sessions: every frame answered once, in order; only the frames the
        // faulty session ran are errors, and the stream goes on.
        var failedBefore = faulty.FailedItems;
        var frames = Enumerable.Range(0, 24).Select(i => new StreamFrame { FrameId = (ulong)i, Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[i % 8]) });
        var responses = await server.StreamAsync(new StreamConfig { MaxInFlight = 6 }, frames);
        Assert.Equal(Enumerable.Range(0, 24).Select(i => (ulong)i), responses.Select(r => r.FrameId));
        Assert.All(responses.Where(r => r.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Error), r => Assert.Equal((int)StatusCode.Internal, r.Error.Code));
        Assert.Equal(faulty.FailedItems - failedBefore, responses.Count(r => r.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Error));
        Assert.Equal(24 - (faulty.FailedItems - failedBefore), responses.Count(r => r.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Result));

        // Healed, the same session serves again; nothing was replaced.
        faulty.Fault = SessionFault.None;
        var servedBefore = faulty.ServedItems;
        var after = new List<StatusCode>();
        for (var round = 0; round < 20 && faulty.ServedItems == servedBefore; round++)
        {
            after.AddRange(await Task.WhenAll(Enumerable.Range(0, 8).Select(i => server.SegmentStatusAsync(HeldOutSet.ImageFiles[i]))));
        }

        Assert.All(after, code => Assert.Equal(StatusCode.OK, code));
        Assert.True(faulty.ServedItems > servedBefore, "the healed session was not used again");
        var counters = server.Model.GetCounters();
        Assert.Equal(faulty.FailedItems, counters.FailedRuns);
        Assert.Equal(0, counters.HungRuns);
        Assert.Equal(0, counters.Queued);
        Assert.Equal(0, counters.InFlight);
        Assert.Equal(2, factory.Created.Count);
        Assert.False(faulty.Disposed);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Segment_ReplacementHangsInItsWarmUp_TerminatedAndReplacedAgainBeforeServing(bool runHonoursTerminate)
    {
        var hang = runHonoursTerminate ? SessionFault.Hang : SessionFault.HangIgnoringTerminate;
        var factory = new FaultInjectingSessionFactory();
        // 3 s, as in the test below: the second replacement's warm-up and the call must each fit.
        var server = await FaultServer.StartAsync(factory, "--MaskFormer:Inference:SessionRunTimeout=00:00:03");
        try
        {
            factory.Created.Single().Fault = SessionFault.Hang;
            factory.NextSessionFault = hang;

            var error = await Assert.ThrowsAsync<RpcException>(async () => await server.Client.SegmentAsync(
                new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) }, deadline: DateTime.UtcNow.AddSeconds(60)));
            Assert.Equal(StatusCode.Unavailable, error.StatusCode);

            // The first replacement hangs in its warm-up run: past the run limit it is terminated and its
            // worker abandoned, and after the retry pause a second replacement, warmed up, serves the next call.
            Assert.Equal(StatusCode.OK, await server.SegmentStatusAsync(HeldOutSet.ImageFiles[1]));
            Assert.Equal(3, factory.Created.Count);
            var (hungWarmUp, serving) = (factory.Created[1], factory.Created[2]);
            Assert.True(hungWarmUp.Terminated, "the replacement's warm-up was not terminated");
            Assert.Equal([1], hungWarmUp.RunSizes);
            Assert.Equal([1, 1], serving.RunSizes);
            Assert.Equal(2, server.Model.GetCounters().HungRuns);
            Assert.Equal([serving], server.Model.Scheduler.Sessions);

            if (runHonoursTerminate)
            {
                await FaultServer.WaitUntilAsync(() => hungWarmUp.Disposed, "the replacement that hung in its warm-up was not disposed");
            }
            else
            {
                // A warm-up run that ignores Terminate keeps only its thread and session, and does not hold up shutdown.
                Assert.True(hungWarmUp.Hanging);
                await server.DisposeAsync();
                Assert.False(hungWarmUp.Disposed);
                Assert.True(serving.Disposed);
                hungWarmUp.Release();
                await FaultServer.WaitUntilAsync(() => hungWarmUp.Disposed, "the session of the warm-up that returned late was not disposed");
            }
        }
        finally
        {
            foreach (var session in factory.Created.Where(session => !session.Disposed))
            {
                session.Release();
            }

            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task Segment_ReplacementsWarmUpRunThrows_LoggedAndTheSessionServesAnyway()
    {
        var factory = new FaultInjectingSessionFactory();
        var server = await FaultServer.StartAsync(factory, "--MaskFormer:Inference:SessionRunTimeout=00:00:03");
        var hung = factory.Created.Single();
        try
        {
            hung.Fault = SessionFault.Hang;
            factory.NextSessionFault = SessionFault.Throw;
            Assert.Equal(StatusCode.Unavailable, await server.SegmentStatusAsync(HeldOutSet.ImageFiles[0]));

            // Its warm-up run threw, yet it took the slot at once (no retry, no other session): as a session
            // whose run throws, it fails only the runs that throw.
            Assert.Equal(StatusCode.Internal, await server.SegmentStatusAsync(HeldOutSet.ImageFiles[1]));
            var replacement = factory.Created[1];
            Assert.Equal(2, factory.Created.Count);
            Assert.Equal([replacement], server.Model.Scheduler.Sessions);
            Assert.Equal(2, replacement.FailedItems);

            replacement.Fault = SessionFault.None;
            Assert.Equal(StatusCode.OK, await server.SegmentStatusAsync(HeldOutSet.ImageFiles[2]));
            Assert.Equal(1, server.Model.GetCounters().HungRuns);
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Segment_SessionHangsPastRunTimeout_UnavailableWithRetryInfoAndSessionReplaced(bool runHonoursTerminate)
    {
        var hang = runHonoursTerminate ? SessionFault.Hang : SessionFault.HangIgnoringTerminate;
        var factory = new FaultInjectingSessionFactory();
        // 3 s: the limit also covers the replacement session's first real runs (its warm-up, then the
        // call), which a loaded 2-core machine could stretch past 1 s and count as a second hang.
        var server = await FaultServer.StartAsync(factory, "--MaskFormer:Inference:SessionRunTimeout=00:00:03", "--MaskFormer:Inference:QueueFullRetryAfter=00:00:00.250");
        var hung = factory.Created.Single();
        try
        {
            hung.Fault = hang;

            var error = await Assert.ThrowsAsync<RpcException>(async () => await server.Client.SegmentAsync(
                new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) }, deadline: DateTime.UtcNow.AddSeconds(60)));

            Assert.Equal(StatusCode.Unavailable, error.StatusCode);
            Assert.Contains("SessionRunTimeout", error.Status.Detail, StringComparison.Ordinal);
            Assert.Equal(TimeSpan.FromMilliseconds(250), error.GetRpcStatus()!.GetDetail<Google.Rpc.RetryInfo>().RetryDelay.ToTimeSpan());
            Assert.True(hung.Terminated, "ONNX Runtime was not asked to terminate the run");

            // The pool had one session: the next call is served by its replacement.
            Assert.Equal(StatusCode.OK, await server.SegmentStatusAsync(HeldOutSet.ImageFiles[1]));
            Assert.Equal(2, factory.Created.Count);

            // The replacement ran its one batch size (MaxBatchSize=1) once before it took the call, then the call.
            Assert.Equal([1, 1], factory.Created[1].RunSizes);
            var counters = server.Model.GetCounters();
            Assert.Equal(1, counters.HungRuns);
            Assert.Equal(0, counters.Queued);
            Assert.Equal(0, counters.InFlight);
            Assert.Single(server.Model.Placements);

            if (hang == SessionFault.Hang)
            {
                // Terminated, the run returned: its worker released the old session.
                await FaultServer.WaitUntilAsync(() => hung.Disposed, "the terminated session was not disposed");
            }
            else
            {
                // A run that ignores Terminate keeps its thread and session, and does not hold up shutdown.
                Assert.True(hung.Hanging);
                Assert.False(hung.Disposed);
                await server.DisposeAsync();
                Assert.False(hung.Disposed);
                Assert.True(factory.Created[1].Disposed);
                hung.Release();
                await FaultServer.WaitUntilAsync(() => hung.Disposed, "the session of the run that returned late was not disposed");
            }
        }
        finally
        {
            if (!hung.Disposed)
            {
                hung.Release();
            }

            await server.DisposeAsync();
        }
    }
}

/// <summary>A real server whose sessions come from a fault-injecting factory; small batches, one thread per session.</summary>
internal sealed class FaultServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly GrpcChannel _channel;
    private int _disposed;

    private FaultServer(WebApplication app, Uri address)
    {
        _app = app;
        _channel = GrpcChannel.ForAddress(address);
        Client = new SegmentationService.SegmentationServiceClient(_channel);
    }

    public SegmentationService.SegmentationServiceClient Client { get; }

    public ServedModel Model => _app.Services.GetRequiredService<SegmentationEngine>().Models[0];

    public IServiceProvider Services => _app.Services;

    public static async Task<FaultServer> StartAsync(FaultInjectingSessionFactory factory, params string[] settings)
    {
        var (app, address) = await ServerFixture.StartAsync(
            ServerFixture.Arguments([.. settings, "--MaskFormer:Inference:IntraOpThreads=1", "--MaskFormer:Inference:MaxBatchSize=1"]),
            builder => builder.Services.AddSingleton<IModelSessionFactory>(factory));
        var server = new FaultServer(app, address);
        await ServerFixture.WaitUntilServingAsync(server._channel);
        return server;
    }

    public async Task<StatusCode> SegmentStatusAsync(string file)
    {
        try
        {
            await Client.SegmentAsync(new SegmentRequest { Image = SegmentTests.EncodedImage(file) }, deadline: DateTime.UtcNow.AddSeconds(60));
            return StatusCode.OK;
        }
        catch (RpcException ex)
        {
            return ex.StatusCode;
        }
    }

    public async Task<List<SegmentStreamResponse>> StreamAsync(StreamConfig config, IEnumerable<StreamFrame> frames)
    {
        using var call = Client.SegmentStream(deadline: DateTime.UtcNow.AddSeconds(120));
        var reading = Task.Run(async () =>
        {
            var responses = new List<SegmentStreamResponse>();
            await foreach (var response in call.ResponseStream.ReadAllAsync())
            {
                responses.Add(response);
            }

            return responses;
        });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = config });
        foreach (var frame in frames)
        {
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = frame });
        }

        await call.RequestStream.CompleteAsync();
        return await reading;
    }

    /// <summary>Polls a condition for up to 30 s: a bounded wait for something that happens on another thread.</summary>
    public static Task WaitUntilAsync(Func<bool> condition, string failure) =>
        Poll.UntilAsync(condition, failure, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(100));

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _channel.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
