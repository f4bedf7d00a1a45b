using Google.Protobuf;
using Grpc.Core;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using Microsoft.Extensions.DependencyInjection;

namespace MaskFormer.Server.Tests;

[Collection(ServerTestGroup.Name)]
public sealed class StreamTests(ServerFixture server)
{
    [Fact]
    public async Task SegmentStream_ManyFramesInFlight_AnswersInOrderEqualToUnary()
    {
        var files = HeldOutSet.ImageFiles.Take(6).ToArray();
        var unary = new Dictionary<string, byte[]>();
        foreach (var file in files)
        {
            unary[file] = SegmentTests.DecodeLabels(await server.Client.SegmentAsync(new SegmentRequest { Image = SegmentTests.EncodedImage(file) }));
        }

        var frames = Enumerable.Range(0, 48).Select(i => (Id: (ulong)(1000 + (i * 7)), File: files[i % files.Length])).ToArray();
        var responses = await StreamAsync(new StreamConfig { MaxInFlight = 8, OverloadPolicy = OverloadPolicy.Queue }, frames.Select(f => Frame(f.Id, f.File)));

        Assert.Equal(frames.Select(f => f.Id), responses.Select(r => r.FrameId));
        for (var i = 0; i < frames.Length; i++)
        {
            Assert.Equal(SegmentStreamResponse.OutcomeOneofCase.Result, responses[i].OutcomeCase);
            Assert.Equal(unary[frames[i].File], SegmentTests.DecodeLabels(responses[i].Result));
            Assert.Equal(frames[i].Id, responses[i].Result.FrameId);
        }
    }

    [Fact]
    public async Task SegmentStream_BadFrameInTheMiddle_PerFrameErrorAndTheStreamGoesOn()
    {
        var frames = Enumerable.Range(0, 10).Select(i => i == 4
            ? new StreamFrame { FrameId = (ulong)i, Image = new Contracts.V1.Image { Encoded = ByteString.CopyFromUtf8("not an image") } }
            : i == 6 ? new StreamFrame { FrameId = (ulong)i } : Frame((ulong)i, HeldOutSet.ImageFiles[i]));

        var responses = await StreamAsync(new StreamConfig { MaxInFlight = 4 }, frames);

        Assert.Equal(Enumerable.Range(0, 10).Select(i => (ulong)i), responses.Select(r => r.FrameId));
        Assert.Equal((int)StatusCode.InvalidArgument, responses[4].Error.Code);
        Assert.Equal((int)StatusCode.InvalidArgument, responses[6].Error.Code);
        Assert.Equal(8, responses.Count(r => r.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Result));
    }

    [Fact]
    public async Task SegmentStream_DeadlinePassesMidStream_DeadlineExceededAndEngineIdle()
    {
        using var call = server.Client.SegmentStream(deadline: DateTime.UtcNow.AddMilliseconds(400));
        var error = await Record.ExceptionAsync(async () =>
        {
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { MaxInFlight = 2 } });
            for (var i = 0; i < 10_000; i++)
            {
                await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = Frame((ulong)i, HeldOutSet.ImageFiles[i % 4]) });
            }
        });

        // The deadline ends the call either on the client's own timer (an RpcException) or, when the server's
        // reset of the stream (HTTP/2 CANCEL, as gRPC servers end a call past its deadline) reaches a write first,
        // as the transport's exception: both are the deadline, anything else is not.
        switch (error)
        {
            case RpcException rpc:
                Assert.Equal(StatusCode.DeadlineExceeded, rpc.StatusCode);
                break;
            case HttpProtocolException reset:
                Assert.Equal(0x8, reset.ErrorCode);
                break;
            default:
                Assert.Fail($"expected the deadline to end the writes, got {error?.GetType().Name ?? "no exception"}");
                break;
        }

        await WaitForIdleEngineAsync();
    }

    [Fact]
    public async Task SegmentStream_ConfigChangedMidStream_LaterFramesFollowIt()
    {
        using var call = server.Client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(1));
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { Tasks = { SegmentationTask.Semantic } } });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = Frame(1, HeldOutSet.ImageFiles[0]) });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { Tasks = { SegmentationTask.Panoptic }, Options = new SegmentationOptions { OverlapThreshold = 2f } } });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = Frame(2, HeldOutSet.ImageFiles[0]) });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { Tasks = { SegmentationTask.Panoptic } } });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = Frame(3, HeldOutSet.ImageFiles[0]) });
        await call.RequestStream.CompleteAsync();
        var responses = await call.ResponseStream.ReadAllAsync().ToArrayAsync();

        Assert.Equal([1ul, 2ul, 3ul], responses.Select(r => r.FrameId));
        Assert.NotNull(responses[0].Result.Semantic);
        Assert.Null(responses[0].Result.Panoptic);
        Assert.Equal((int)StatusCode.InvalidArgument, responses[1].Error.Code);
        Assert.Contains("overlap_threshold", responses[1].Error.Message, StringComparison.Ordinal);
        Assert.Null(responses[2].Result.Semantic);
        Assert.NotNull(responses[2].Result.Panoptic);
    }

    [Theory]
    [InlineData(OverloadPolicy.Queue)]
    [InlineData(OverloadPolicy.DropOldest)]
    [InlineData(OverloadPolicy.LatestOnly)]
    public async Task SegmentStream_FramesFasterThanService_EveryFrameAccountedFor(OverloadPolicy policy)
    {
        var frames = Enumerable.Range(0, 80).Select(i => Frame((ulong)i, HeldOutSet.ImageFiles[i % 4])).ToArray();

        var responses = await StreamAsync(new StreamConfig { MaxInFlight = 1, OverloadPolicy = policy }, frames);

        Assert.Equal(frames.Select(f => f.FrameId), responses.Select(r => r.FrameId));
        var results = responses.Count(r => r.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Result);
        var errors = responses.Count(r => r.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Error);
        var skipped = responses.Where(r => r.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Skipped).ToArray();
        Assert.Equal(frames.Length, results + errors + skipped.Length);
        Assert.Equal(0, errors);
        switch (policy)
        {
            case OverloadPolicy.Queue:
                Assert.Empty(skipped);
                break;
            case OverloadPolicy.DropOldest:
                Assert.NotEmpty(skipped);
                Assert.All(skipped, s => Assert.Equal(SkipReason.DroppedOldest, s.Skipped.Reason));
                break;
            default:
                Assert.NotEmpty(skipped);
                Assert.All(skipped, s => Assert.Equal(SkipReason.Superseded, s.Skipped.Reason));
                Assert.Equal(SegmentStreamResponse.OutcomeOneofCase.Result, responses[^1].OutcomeCase);
                break;
        }
    }

    [Fact]
    public async Task SegmentStream_ClientStopsReading_ServerStopsReadingAndOthersAreServed()
    {
        using var call = server.Client.SegmentStream();
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { MaxInFlight = 2 } });
        var frame = Frame(0, HeldOutSet.ImageFiles[0]);
        var sent = 0;
        var blocked = false;
        for (; sent < 2000; sent++)
        {
            var write = call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = frame });
            if (await Task.WhenAny(write, Task.Delay(TimeSpan.FromSeconds(3))) != write)
            {
                blocked = true;
                break;
            }
        }

        // Another caller (its own connection) is served while this stream is stuck on its unread answers.
        using var otherChannel = Grpc.Net.Client.GrpcChannel.ForAddress(server.Address);
        var other = await new SegmentationService.SegmentationServiceClient(otherChannel).SegmentAsync(new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[1]) }, deadline: DateTime.UtcNow.AddSeconds(30));
        var counters = server.Services.GetRequiredService<SegmentationEngine>().Models[0].GetCounters();

        Assert.True(blocked, $"all {sent} frames were accepted although no answer was read");
        Assert.InRange(sent, 1, 200);
        Assert.NotEmpty(other.Semantic.LabelMap.Data);
        Assert.InRange(counters.Queued + counters.InFlight, 0, 4);
        call.Dispose();
        await WaitForIdleEngineAsync();
    }

    [Fact]
    public async Task SegmentStream_CancelledMidStream_EngineCountersReturnToZero()
    {
        using var cancellation = new CancellationTokenSource();
        using var call = server.Client.SegmentStream(cancellationToken: cancellation.Token);
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { MaxInFlight = 16 } });
        for (var i = 0; i < 24; i++)
        {
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = Frame((ulong)i, HeldOutSet.ImageFiles[i % 8]) });
        }

        await cancellation.CancelAsync();

        await WaitForIdleEngineAsync();
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
    }

    [Fact]
    public async Task SegmentStream_MovingObjects_OverlappingSegmentsKeepTheirTrackIdWhateverTheirClass()
    {
        // The tracker's own stability on ground truth is an engine test; here the real model's segments
        // go through the stream: a segment, stuff or thing, that clearly continues (mask IoU >= 0.5, one
        // to one, whatever either's class) a segment of the previous frame must carry its track id.
        var clip = Path.Combine(RepositoryPaths.TinyShapes, "clip");
        var files = Directory.GetFiles(clip, "frame_???.png").Order(StringComparer.Ordinal).ToArray();
        var frames = files.Select((f, i) => new StreamFrame { FrameId = (ulong)i, Image = new Contracts.V1.Image { Encoded = ByteString.CopyFrom(File.ReadAllBytes(f)) } });
        var config = new StreamConfig { Tasks = { SegmentationTask.Panoptic }, MaxInFlight = 4, Tracking = new TrackingOptions { IouThreshold = 0.3f } };

        var responses = await StreamAsync(config, frames);

        var continued = 0;
        (PanopticSegment Segment, HashSet<int> Pixels)[] previous = [];
        foreach (var response in responses)
        {
            var current = SegmentPixels(response.Result.Panoptic);
            Assert.Equal(current.Length, current.Select(c => c.Segment.TrackId).Distinct().Count());
            Assert.All(current, c => Assert.NotEqual(0u, c.Segment.TrackId));

            // One to one, best overlap first, as the tracker matches.
            var pairs = current
                .SelectMany(c => previous.Select(p => (Current: c.Segment, Previous: p.Segment, IoU: c.Pixels.Intersect(p.Pixels).Count() / (double)c.Pixels.Union(p.Pixels).Count())))
                .Where(p => p.IoU >= 0.5)
                .OrderByDescending(p => p.IoU);
            var used = new HashSet<PanopticSegment>(ReferenceEqualityComparer.Instance);
            foreach (var (segment, before, _) in pairs)
            {
                if (used.Add(segment) && used.Add(before))
                {
                    Assert.Equal(before.TrackId, segment.TrackId);
                    continued++;
                }
            }

            previous = current;
        }

        Assert.True(continued >= 8, $"only {continued} segments continued a track over 16 frames");
    }

    private static (PanopticSegment Segment, HashSet<int> Pixels)[] SegmentPixels(PanopticResult panoptic)
    {
        using var png = SixLabors.ImageSharp.Image.Load<SixLabors.ImageSharp.PixelFormats.Rgb24>(panoptic.SegmentIdPng.Span);
        var pixels = panoptic.Segments.ToDictionary(s => s.Id, _ => new HashSet<int>());
        for (var y = 0; y < png.Height; y++)
        {
            for (var x = 0; x < png.Width; x++)
            {
                var p = png[x, y];
                if (pixels.TryGetValue((uint)(p.R + (256 * p.G) + (65536 * p.B)), out var set))
                {
                    set.Add((y * png.Width) + x);
                }
            }
        }

        return [.. panoptic.Segments.Select(s => (s, pixels[s.Id]))];
    }

    [Fact]
    public async Task SegmentStream_SwitchFromQueueToLatestOnly_FramesSentUnderQueueAreNeverSkipped()
    {
        var queued = Enumerable.Range(0, 24).Select(i => Frame((ulong)i, HeldOutSet.ImageFiles[i % HeldOutSet.ImageFiles.Count])).ToArray();
        var latest = Enumerable.Range(24, 12).Select(i => Frame((ulong)i, HeldOutSet.ImageFiles[i % HeldOutSet.ImageFiles.Count])).ToArray();

        using var call = server.Client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(2));
        var reading = Task.Run(async () =>
        {
            var responses = new List<SegmentStreamResponse>();
            await foreach (var response in call.ResponseStream.ReadAllAsync())
            {
                responses.Add(response);
            }

            return responses.ToArray();
        });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { MaxInFlight = 1, OverloadPolicy = OverloadPolicy.Queue } });
        foreach (var frame in queued)
        {
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = frame });
        }

        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { MaxInFlight = 1, OverloadPolicy = OverloadPolicy.LatestOnly } });
        foreach (var frame in latest)
        {
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = frame });
        }

        await call.RequestStream.CompleteAsync();
        var responses = await reading;

        Assert.Equal(Enumerable.Range(0, 36).Select(i => (ulong)i), responses.Select(r => r.FrameId));
        Assert.All(responses.Take(24), r => Assert.Equal(SegmentStreamResponse.OutcomeOneofCase.Result, r.OutcomeCase));
        Assert.Equal(SegmentStreamResponse.OutcomeOneofCase.Result, responses[^1].OutcomeCase);
        Assert.All(responses.Skip(24).Where(r => r.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Skipped), r => Assert.Equal(SkipReason.Superseded, r.Skipped.Reason));
    }

    // One stream call, all answers read while the frames are written (shared with the latency-contract tests).
    private Task<SegmentStreamResponse[]> StreamAsync(StreamConfig config, IEnumerable<StreamFrame> frames) =>
        LatencyContractTests.StreamAsync(server.Client, config, frames);

    private async Task WaitForIdleEngineAsync()
    {
        var model = server.Services.GetRequiredService<SegmentationEngine>().Models[0];
        for (var attempt = 0; attempt < 200; attempt++)
        {
            var counters = model.GetCounters();
            if (counters.Queued == 0 && counters.InFlight == 0)
            {
                return;
            }

            await Task.Delay(50);
        }

        var last = model.GetCounters();
        Assert.Fail($"engine still busy after 10 s: queued {last.Queued}, in flight {last.InFlight}");
    }

    private static StreamFrame Frame(ulong id, string file) => new() { FrameId = id, Image = SegmentTests.EncodedImage(file) };
}
