using System.Buffers.Binary;
using System.Net;
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
    private const int Budget = 1024 * 1024;

    [Fact]
    public async Task Unary_BudgetHeldByAnUploadInProgress_SecondCallResourceExhaustedWithRetryInfo_ThenAnsweredOnceGivenBack()
    {
        var (app, address) = await StartAsync();
        await using var _ = app;
        using var channel = GrpcChannel.ForAddress(address);
        await ServerFixture.WaitUntilServingAsync(channel);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var budget = app.Services.GetRequiredService<RequestBytesBudget>();

        await using var upload = await SlowUpload.StartAsync(address, Gray(836));
        await Poll.UntilAsync(() => budget.InUse >= 836 * 836, "the upload's header never reserved its bytes", TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(20));

        var second = new SegmentRequest { Image = Gray(640) };
        var refused = await Assert.ThrowsAsync<RpcException>(() => client.SegmentAsync(second, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("MaskFormer:Grpc:MaxRequestBytesInFlight", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.GetRpcStatus()!.GetDetail<Google.Rpc.RetryInfo>().RetryDelay.ToTimeSpan());
        var health = await new Grpc.Health.V1.Health.HealthClient(channel).CheckAsync(new HealthCheckRequest());
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
        var (app, address) = await StartAsync();
        await using var _ = app;
        using var channel = GrpcChannel.ForAddress(address);
        await ServerFixture.WaitUntilServingAsync(channel);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var budget = app.Services.GetRequiredService<RequestBytesBudget>();

        await using var upload = await SlowUpload.StartAsync(address, Gray(836));
        await Poll.UntilAsync(() => budget.InUse >= 836 * 836, "the upload's header never reserved its bytes", TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(20));

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

    private static Task<(Microsoft.AspNetCore.Builder.WebApplication App, Uri Address)> StartAsync() =>
        ServerFixture.StartAsync(ServerFixture.Arguments(
            $"--MaskFormer:Grpc:MaxReceiveMessageSize={Budget}",
            $"--MaskFormer:Grpc:MaxRequestBytesInFlight={Budget}",
            "--MaskFormer:Inference:WarmUp=false"));

    private static Contracts.V1.Image Gray(int side) => new()
    {
        Raw = new RawFrame { Width = (uint)side, Height = (uint)side, PixelFormat = PixelFormat.Gray8, Data = ByteString.CopyFrom(new byte[side * side]) },
    };

    /// <summary>
    /// A real unary Segment call over HTTP/2 whose request body stops after its gRPC header and a few
    /// bytes, until <see cref="FinishAsync"/> sends the rest: an upload on a slow link.
    /// </summary>
    private sealed class SlowUpload : IAsyncDisposable
    {
        private readonly HttpClient _http = new(new SocketsHttpHandler());
        private readonly TaskCompletionSource _rest = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private Task<HttpResponseMessage> _response = null!;

        public static async Task<SlowUpload> StartAsync(Uri address, Contracts.V1.Image image)
        {
            var upload = new SlowUpload();
            var message = new SegmentRequest { Image = image }.ToByteArray();
            var body = new byte[5 + message.Length];
            BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(1), (uint)message.Length);
            message.CopyTo(body, 5);
            var request = new HttpRequestMessage(HttpMethod.Post, new Uri(address, "/maskformer.v1.SegmentationService/Segment"))
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                Content = new HeldContent(body, upload._rest.Task),
            };
            request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
            request.Headers.TryAddWithoutValidation("te", "trailers");
            upload._response = upload._http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            await Task.Yield();
            return upload;
        }

        public async Task<SegmentResponse> FinishAsync()
        {
            _rest.TrySetResult();
            using var response = await _response;
            var bytes = await response.Content.ReadAsByteArrayAsync();
            var status = response.TrailingHeaders.TryGetValues("grpc-status", out var values) ? values.Single() : "missing";
            Assert.Equal("0", status);
            return SegmentResponse.Parser.ParseFrom(bytes.AsSpan(5).ToArray());
        }

        public async ValueTask DisposeAsync()
        {
            _rest.TrySetResult();
            try
            {
                (await _response).Dispose();
            }
            catch (HttpRequestException)
            {
            }

            _http.Dispose();
        }

        private sealed class HeldContent(byte[] body, Task rest) : HttpContent
        {
            private const int Sent = 64;

            protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
            {
                await stream.WriteAsync(body.AsMemory(0, Sent));
                await stream.FlushAsync();
                await rest;
                await stream.WriteAsync(body.AsMemory(Sent));
            }

            protected override bool TryComputeLength(out long length)
            {
                length = 0;
                return false;
            }
        }
    }
}
