using System.Text.Json;
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

        // Another caller is served while this stream is stuck on its unread answers.
        var other = await server.Client.SegmentAsync(new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[1]) }, deadline: DateTime.UtcNow.AddSeconds(30));
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
    public async Task SegmentStream_MovingObjects_TrackIdsStableAcrossFrames()
    {
        var clip = Path.Combine(RepositoryPaths.TinyShapes, "clip");
        using var tracks = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(clip, "tracks.json")));
        var groundTruth = tracks.RootElement.GetProperty("frames").EnumerateArray().ToArray();
        var frames = groundTruth.Select((f, i) => new StreamFrame
        {
            FrameId = (ulong)i,
            Image = new Contracts.V1.Image { Encoded = ByteString.CopyFrom(File.ReadAllBytes(Path.Combine(clip, f.GetProperty("file_name").GetString()!))) },
        });
        var config = new StreamConfig { Tasks = { SegmentationTask.Panoptic, SegmentationTask.Instance }, MaxInFlight = 4, Options = new SegmentationOptions { InstanceScoreThreshold = 0.3f } };

        var responses = await StreamAsync(config, frames);

        var panopticIds = new Dictionary<int, List<uint>>();
        var instanceIds = new Dictionary<int, List<uint>>();
        for (var i = 0; i < groundTruth.Length; i++)
        {
            var result = responses[i].Result;
            foreach (var truth in groundTruth[i].GetProperty("objects").EnumerateArray())
            {
                var trackId = truth.GetProperty("track_id").GetInt32();
                var category = truth.GetProperty("category_id").GetUInt32();
                var box = truth.GetProperty("bbox").EnumerateArray().Select(v => v.GetDouble()).ToArray();
                var segment = result.Panoptic.Segments.Where(s => s.CategoryId == category).MaxBy(s => BoxIoU(box, s.Bbox));
                if (segment is not null && BoxIoU(box, segment.Bbox) > 0.5)
                {
                    CollectionsAdd(panopticIds, trackId, segment.TrackId);
                }

                var instance = result.Instance.Instances.Where(s => s.LabelId == category).MaxBy(s => BoxIoU(box, s.Bbox));
                if (instance is not null && BoxIoU(box, instance.Bbox) > 0.5)
                {
                    CollectionsAdd(instanceIds, trackId, instance.TrackId);
                }
            }
        }

        foreach (var ids in new[] { panopticIds, instanceIds })
        {
            Assert.Equal(3, ids.Count);
            foreach (var (track, seen) in ids)
            {
                Assert.True(seen.Count >= 12, $"ground-truth track {track} found in only {seen.Count} of 16 frames");
                Assert.True(seen.Distinct().Count() == 1, $"ground-truth track {track} got ids {string.Join(",", seen)}");
                Assert.NotEqual(0u, seen[0]);
            }

            Assert.Equal(3, ids.Values.Select(v => v[0]).Distinct().Count());
        }
    }

    private async Task<SegmentStreamResponse[]> StreamAsync(StreamConfig config, IEnumerable<StreamFrame> frames)
    {
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
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = config });
        foreach (var frame in frames)
        {
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = frame });
        }

        await call.RequestStream.CompleteAsync();
        return await reading;
    }

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

    private static void CollectionsAdd(Dictionary<int, List<uint>> map, int key, uint value)
    {
        if (!map.TryGetValue(key, out var list))
        {
            map[key] = list = [];
        }

        list.Add(value);
    }

    private static double BoxIoU(double[] truth, BoundingBox box)
    {
        var left = Math.Max(truth[0], box.X);
        var top = Math.Max(truth[1], box.Y);
        var right = Math.Min(truth[0] + truth[2], box.X + box.Width);
        var bottom = Math.Min(truth[1] + truth[3], box.Y + box.Height);
        var intersection = Math.Max(0, right - left) * Math.Max(0, bottom - top);
        var union = (truth[2] * truth[3]) + (box.Width * (double)box.Height) - intersection;
        return union > 0 ? intersection / union : 0;
    }
}
