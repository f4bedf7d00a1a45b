using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;
using MaskFormer.Server.Limits;
using Microsoft.Extensions.DependencyInjection;

namespace MaskFormer.Server.Tests;

/// <summary>
/// The request-bytes budget (MaskFormer:Grpc:MaxRequestBytesInFlight) on a real server: a unary call's
/// message is held from its header on, so an upload still arriving holds its bytes; a second call that
/// does not fit is refused before its message is read, a stream waits, and both go on once the bytes
/// are given back.
/// </summary>
[Collection(ServerTestGroup.Name)]
public sealed class RequestBytesTests
{
    private const int BudgetBytes = 1024 * 1024;

    [Fact]
    public async Task Unary_BudgetHeldByAnUploadInProgress_SecondCallResourceExhaustedWithRetryInfo_ThenAnsweredOnceGivenBack()
    {
        await using var held = await HeldServer.StartAsync();
        var (client, budget, upload) = (held.Client, held.Budget, held.Upload);

        var second = new SegmentRequest { Image = Gray(640) };
        var refused = await Assert.ThrowsAsync<RpcException>(() => client.SegmentAsync(second, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("MaskFormer:Grpc:MaxRequestBytesInFlight", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.GetRpcStatus()!.GetDetail<Google.Rpc.RetryInfo>().RetryDelay.ToTimeSpan());
        var health = await new Grpc.Health.V1.Health.HealthClient(held.Channel).CheckAsync(new HealthCheckRequest());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);

        var first = await upload.FinishAsync();
        Assert.Equal(836u, first.Width);
        await Poll.UntilAsync(() => budget.InUse == 0, "the finished upload kept its bytes", TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(20));
        var answered = await client.SegmentAsync(second, deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.Equal(640u, answered.Width);
    }

    [Fact]
    public async Task Stream_BudgetHeld_FrameWaitsForRoomThenAnswered_AndFramesLargerThanHalfTheBudgetFollowEachOther()
    {
        await using var held = await HeldServer.StartAsync();
        var (client, budget, upload) = (held.Client, held.Budget, held.Upload);

        using var stream = client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(2));
        await stream.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = 0, Image = Gray(640) } });
        await Poll.UntilAsync(() => budget.Waiting == 1, "the stream's frame did not wait for room", TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(20));

        Assert.Equal(836u, (await upload.FinishAsync()).Width);

        // Each 700 kB frame fits only once the one before is given back: they follow each other.
        for (ulong id = 1; id <= 3; id++)
        {
            await stream.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = id, Image = Gray(836) } });
        }

        await stream.RequestStream.CompleteAsync();
        var answers = await stream.ResponseStream.ReadAllAsync().ToArrayAsync();
        Assert.Equal(StatusCode.OK, stream.GetStatus().StatusCode);
        Assert.Equal([0ul, 1ul, 2ul, 3ul], answers.Select(a => a.FrameId));
        Assert.All(answers, a => Assert.NotNull(a.Result));
        await Poll.UntilAsync(() => budget.InUse == 0, "the stream kept bytes after it ended", TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(20));
    }

    [Fact]
    public async Task Stream_WaitingOnTheUploadsConnection_TheUploadStillFinishes()
    {
        // Two streams on the upload's own HTTP/2 connection each send a 490 kB frame that must wait: their
        // unread bytes must not use up the connection's window, or the upload (whose bytes they wait for)
        // could never send the rest (Kestrel's 1 MiB default against two 768 KiB stream windows).
        using var http = new HttpClient(new SocketsHttpHandler { EnableMultipleHttp2Connections = false });
        await using var held = await HeldServer.StartAsync(http);
        var frame = new SegmentStreamRequest { Frame = new StreamFrame { FrameId = 1, Image = Gray(700) } };
        await using var first = SlowUpload.Start(http, held.Address, "SegmentStream", frame, sentFirst: int.MaxValue);
        await using var second = SlowUpload.Start(http, held.Address, "SegmentStream", frame, sentFirst: int.MaxValue);
        var budget = held.Budget;
        await Poll.UntilAsync(() => budget.Waiting == 2, "the streams' frames did not wait for room", TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(20));

        var answer = await held.Upload.FinishAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(836u, answer.Width);
        await Poll.UntilAsync(() => budget.Waiting == 0, "the streams never got the room the upload gave back", TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(20));
    }

    [Fact]
    public async Task Unary_UploadStoppedAfterItsHeader_FailsAfterTheGracePeriod_AndGivesItsBytesBack()
    {
        await using var held = await HeldServer.StartAsync(minBytesPerSecond: 65536);

        var (status, message) = await held.Upload.StatusAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(((int)StatusCode.ResourceExhausted).ToString(System.Globalization.CultureInfo.InvariantCulture), status);
        Assert.Contains("MaskFormer:Grpc:MinRequestBytesPerSecond", message, StringComparison.Ordinal);
        var budget = held.Budget;
        await Poll.UntilAsync(() => budget.InUse == 0, "the stopped upload kept its bytes", TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(20));
    }

    [Fact]
    public async Task Unary_CompressedMessage_HoldsTheLargestMessage_ThenAnswered()
    {
        // 700 kB of zeros compress to about a kilobyte, but may inflate to the message limit.
        await using var held = await HeldServer.StartAsync(compress: true);

        Assert.Equal(BudgetBytes, held.Budget.InUse);
        var refused = await Assert.ThrowsAsync<RpcException>(() => held.Client.SegmentAsync(new SegmentRequest { Image = Gray(16) }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Equal(836u, (await held.Upload.FinishAsync()).Width);
    }

    [Fact]
    public async Task Unary_NoToken_UnauthenticatedBeforeItsMessageIsRead_HoldingNothing()
    {
        // The upload stops after its header: only a refusal that does not read the message can answer it.
        var tokens = Path.GetTempFileName();
        await File.WriteAllTextAsync(tokens, "a-token-for-this-test\n");
        try
        {
            var (app, address) = await ServerFixture.StartAsync(ServerFixture.Arguments($"--MaskFormer:Security:TokensFile={tokens}", "--MaskFormer:Grpc:MinRequestBytesPerSecond=0", "--MaskFormer:Inference:WarmUp=false"));
            await using var _ = app;
            using var http = new HttpClient(new SocketsHttpHandler());
            await using var upload = SlowUpload.Start(http, address, "Segment", new SegmentRequest { Image = Gray(836) }, sentFirst: 64);

            var (status, message) = await upload.StatusAsync().WaitAsync(TimeSpan.FromSeconds(30));

            Assert.Equal(((int)StatusCode.Unauthenticated).ToString(System.Globalization.CultureInfo.InvariantCulture), status);
            Assert.Contains("authorization: Bearer <token>", message, StringComparison.Ordinal);
            Assert.Equal(0, app.Services.GetRequiredService<RequestBytesBudget>().InUse);
        }
        finally
        {
            File.Delete(tokens);
        }
    }

    [Fact]
    public async Task Budget_WaitersServedInOrder_FreeReservationDoesNotOvertake_CancelledHeadLetsTheNextIn()
    {
        var budget = new RequestBytesBudget(100);
        Assert.True(budget.TryReserve(60));
        var big = budget.ReserveAsync(70, CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var blocked = budget.ReserveAsync(90, cancel.Token);
        var small = budget.ReserveAsync(10, CancellationToken.None);

        Assert.False(budget.TryReserve(10)); // 30 are free, but three wait before it
        budget.Release(60);
        await big;
        Assert.False(blocked.IsCompleted);
        Assert.False(small.IsCompleted); // behind the 90 that waits first
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => blocked);
        await small;
        Assert.Equal(80, budget.InUse);
        Assert.Equal(0, budget.Waiting);

        budget.Release(80);
        Assert.True(budget.TryReserve(100));
        var oversized = budget.ReserveAsync(150, CancellationToken.None);
        budget.Release(100);
        await oversized; // larger than the whole budget: let in alone
        Assert.Equal(150, budget.InUse);
    }

    private static Contracts.V1.Image Gray(int side) => new()
    {
        Raw = new RawFrame { Width = (uint)side, Height = (uint)side, PixelFormat = PixelFormat.Gray8, Data = ByteString.CopyFrom(new byte[side * side]) },
    };

    /// <summary>A server with a 1 MiB budget, 700 kB of which an upload stopped after its header holds.</summary>
    private sealed class HeldServer : IAsyncDisposable
    {
        private readonly HttpClient _http = new(new SocketsHttpHandler());
        private Microsoft.AspNetCore.Builder.WebApplication _app = null!;

        public Uri Address { get; private set; } = null!;

        public GrpcChannel Channel { get; private set; } = null!;

        public SegmentationService.SegmentationServiceClient Client { get; private set; } = null!;

        public RequestBytesBudget Budget { get; private set; } = null!;

        public SlowUpload Upload { get; private set; } = null!;

        /// <summary>
        /// Starts the server and the held upload, on its own connection or on <paramref name="http"/>'s;
        /// by default no minimum arrival rate, so the upload may wait as long as a test needs.
        /// </summary>
        public static async Task<HeldServer> StartAsync(HttpClient? http = null, long minBytesPerSecond = 0, bool compress = false)
        {
            var held = new HeldServer();
            (held._app, held.Address) = await ServerFixture.StartAsync(ServerFixture.Arguments(
                $"--MaskFormer:Grpc:MaxReceiveMessageSize={BudgetBytes}",
                $"--MaskFormer:Grpc:MaxRequestBytesInFlight={BudgetBytes}",
                $"--MaskFormer:Grpc:MinRequestBytesPerSecond={minBytesPerSecond}",
                "--MaskFormer:Inference:WarmUp=false"));
            held.Channel = GrpcChannel.ForAddress(held.Address);
            await ServerFixture.WaitUntilServingAsync(held.Channel);
            held.Client = new SegmentationService.SegmentationServiceClient(held.Channel);
            held.Budget = held._app.Services.GetRequiredService<RequestBytesBudget>();
            held.Upload = SlowUpload.Start(http ?? held._http, held.Address, "Segment", new SegmentRequest { Image = Gray(836) }, sentFirst: 64, compress);
            var budget = held.Budget;
            await Poll.UntilAsync(() => budget.InUse >= 836 * 836, "the upload's header never reserved its bytes", TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(20));
            return held;
        }

        public async ValueTask DisposeAsync()
        {
            await Upload.DisposeAsync();
            Channel.Dispose();
            await _app.DisposeAsync();
            _http.Dispose();
        }
    }
}
