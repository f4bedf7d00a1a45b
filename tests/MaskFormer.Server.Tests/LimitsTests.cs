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

/// <summary>Transport limits on a server of their own: concurrent calls, the default deadline, Kestrel agreeing with gRPC.</summary>
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

    [Theory]
    [InlineData("MaxConcurrentCalls", "0")]
    [InlineData("MaxStreamsPerConnection", "0")]
    [InlineData("MaxReceiveMessageSize", "10")]
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
