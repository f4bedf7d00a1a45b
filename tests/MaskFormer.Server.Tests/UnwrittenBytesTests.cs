using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Server.Streaming;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace MaskFormer.Server.Tests;

/// <summary>
/// A stream's unwritten answers are bounded in bytes (issue 11 item 6): a client that stops reading
/// stops its stream's work. Its own server, so the byte counters are this stream's alone.
/// </summary>
public sealed class UnwrittenBytesTests
{
    private const long Bound = 1024 * 1024;

    // An answer's size: a raw 512x512 label map and a little more.
    private const long Answer = 300 * 1024;

    [Fact]
    public async Task SegmentStream_ClientStopsReading_HeldBytesStayUnderTheBoundAndFramesStopStarting()
    {
        // Answers of 256 KiB (a raw 512x512 label map): the count bound (raised here) never binds first.
        var (app, address) = await ServerFixture.StartAsync(ServerFixture.Arguments(
            $"--MaskFormer:Streaming:MaxUnwrittenBytes={Bound}",
            "--MaskFormer:Streaming:MaxUnwrittenResponses=1000"));
        await using var _ = app;
        using var channel = GrpcChannel.ForAddress(address);
        await ServerFixture.WaitUntilServingAsync(channel);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var buffers = app.Services.GetRequiredService<StreamBuffers>();
        var model = app.Services.GetRequiredService<SegmentationEngine>().Models[0];

        using var call = client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(5));
        var config = new StreamConfig
        {
            MaxInFlight = 1,
            StatusIntervalMs = 60_000,
            Options = new SegmentationOptions { LabelMapEncoding = LabelMapEncoding.Raw, OutputSize = new OutputSize { Exact = new OutputDimensions { Width = 512, Height = 512 } } },
        };
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = config });

        // 640x480 raw frames (900 KiB each): 60 of them are far more than the transport's windows hold.
        const int Frames = 60;
        var pixels = ByteString.CopyFrom(new byte[640 * 480 * 3].Select((_, i) => (byte)(i * 7)).ToArray());
        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < Frames; i++)
            {
                var image = new Contracts.V1.Image { Raw = new RawFrame { Width = 640, Height = 480, PixelFormat = PixelFormat.Rgb24, Data = pixels } };
                await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = (ulong)i, Image = image } });
            }

            await call.RequestStream.CompleteAsync();
        });

        // Waits on an event, not a duration: the answers held for this client reach the bound, so that
        // with one frame in flight (and each answer about 256 KiB) no frame can start until it reads.
        // Both halves: an answer's bytes are counted before the stream next tries to start a frame and
        // holds it back, so right after the first the second may not have happened yet.
        await WaitUntilAsync(() => buffers.UnwrittenBytes > Bound - Answer && buffers.HeldBack > 0, () => $"held {buffers.UnwrittenBytes} bytes, held back {buffers.HeldBack} times");
        var held = buffers.UnwrittenBytes;

        Assert.True(buffers.HeldBack > 0);
        Assert.False(sending.IsCompleted, "every frame was read although no answer was");
        Assert.InRange(held, Bound - Answer, Bound + Answer);

        var messages = await call.ResponseStream.ReadAllAsync().ToArrayAsync();
        await sending;
        var answers = messages.Where(m => m.OutcomeCase != SegmentStreamResponse.OutcomeOneofCase.Status).ToArray();
        var largest = answers.Max(a => a.CalculateSize());
        var final = messages[^1].Status;

        Assert.Equal(Enumerable.Range(0, Frames).Select(i => (ulong)i), answers.Select(a => a.FrameId));
        Assert.All(answers, a => Assert.Equal(SegmentStreamResponse.OutcomeOneofCase.Result, a.OutcomeCase));
        Assert.InRange(largest, 256 * 1024, Answer);
        Assert.True(final.Final);
        Assert.InRange((long)final.PeakUnwrittenBytes, held, Bound + largest);
        Assert.Equal(0, buffers.UnwrittenBytes);
    }

    [Fact]
    public async Task Start_MaxUnwrittenBytesTooSmall_FailsNamingTheSetting()
    {
        WebApplication? app = null;

        var error = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(async () =>
        {
            app = Hosting.ServerApp.Build(ServerFixture.Arguments("--MaskFormer:Streaming:MaxUnwrittenBytes=100", "--MaskFormer:Inference:WarmUp=false"));
            await app.StartAsync();
        });
        if (app is not null)
        {
            await app.DisposeAsync();
        }

        Assert.Contains("MaskFormer:Streaming:MaxUnwrittenBytes", error.Message, StringComparison.Ordinal);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, Func<string> failure)
    {
        // A generous cap so a stuck server fails the test instead of hanging it; never a timing assertion.
        var until = DateTime.UtcNow.AddMinutes(3);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < until, failure());
            await Task.Delay(20);
        }
    }
}
