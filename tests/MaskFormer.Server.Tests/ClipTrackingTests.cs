using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using MaskFormer.Contracts.V1;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Server.Tests;

/// <summary>
/// The committed model on the committed clip, through the service's stream and tracker: what a user of the
/// README's <c>stream</c> command sees. Each ground-truth object is found by mask overlap (IoU above 0.5, as
/// PQ matches) in every frame's panoptic result.
/// </summary>
[Collection(ServerTestGroup.Name)]
public sealed class ClipTrackingTests(ServerFixture server, Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly string s_clip = Path.Combine(RepositoryPaths.TinyShapes, "clip");

    [Fact]
    public async Task SegmentStream_CommittedClip_EachObjectKeepsItsClassAndOneTrackId()
    {
        using var tracks = JsonDocument.Parse(File.ReadAllText(Path.Combine(s_clip, "tracks.json")));
        var frames = tracks.RootElement.GetProperty("frames").EnumerateArray().ToArray();
        var responses = await StreamAsync(frames.Select(f => f.GetProperty("file_name").GetString()!));

        var seen = new Dictionary<int, List<(int Category, uint TrackId)?>>();
        foreach (var (frame, response) in frames.Zip(responses))
        {
            Assert.Equal(SegmentStreamResponse.OutcomeOneofCase.Result, response.OutcomeCase);
            var truth = ReadSegmentIds(Path.Combine(s_clip, frame.GetProperty("panoptic_file_name").GetString()!));
            var predicted = ReadSegmentIds(response.Result.Panoptic.SegmentIdPng.ToByteArray());
            var things = response.Result.Panoptic.Segments.Where(s => s.IsThing).ToArray();
            foreach (var truthObject in frame.GetProperty("objects").EnumerateArray())
            {
                var trackId = truthObject.GetProperty("track_id").GetInt32();
                var truthId = truthObject.GetProperty("segment_id").GetInt32();
                var match = things.Select(s => (Segment: s, IoU: IoU(truth, truthId, predicted, (int)s.Id))).Where(p => p.IoU > 0.5).ToArray();
                if (!seen.TryGetValue(trackId, out var history))
                {
                    seen[trackId] = history = [];
                }

                history.Add(match.Length == 1 ? ((int)match[0].Segment.CategoryId, match[0].Segment.TrackId) : null);
            }
        }

        var truthTracks = tracks.RootElement.GetProperty("tracks").EnumerateArray().ToArray();
        Assert.Equal(truthTracks.Length, seen.Count);
        var serviceIds = new List<uint>();
        foreach (var track in truthTracks)
        {
            var history = seen[track.GetProperty("track_id").GetInt32()];
            var category = track.GetProperty("category_id").GetInt32();
            var right = history.Where(h => h?.Category == category).Select(h => h!.Value.TrackId).ToArray();
            output.WriteLine($"{track.GetProperty("name").GetString()}: true class in {right.Length} of {history.Count} frames, track ids [{string.Join(", ", history.Select(h => h is { } v ? $"{v.Category}#{v.TrackId}" : "-"))}]");
            Assert.True(right.Length >= history.Count * 0.9, $"{track.GetProperty("name").GetString()} has its true class in only {right.Length} of {history.Count} frames");
            serviceIds.Add(Assert.Single(right.Distinct()));
        }

        Assert.Equal(serviceIds.Count, serviceIds.Distinct().Count());
    }

    private static double IoU(int[] truth, int truthId, int[] predicted, int predictedId)
    {
        var (intersection, union) = (0, 0);
        for (var i = 0; i < truth.Length; i++)
        {
            var (a, b) = (truth[i] == truthId, predicted[i] == predictedId);
            intersection += a && b ? 1 : 0;
            union += a || b ? 1 : 0;
        }

        return union > 0 ? intersection / (double)union : 0;
    }

    private static int[] ReadSegmentIds(string path) => ReadSegmentIds(File.ReadAllBytes(path));

    private static int[] ReadSegmentIds(byte[] png)
    {
        using var image = SixLabors.ImageSharp.Image.Load<Rgb24>(png);
        var ids = new int[image.Width * image.Height];
        for (var y = 0; y < image.Height; y++)
        {
            for (var x = 0; x < image.Width; x++)
            {
                var p = image[x, y];
                ids[(y * image.Width) + x] = p.R + (256 * p.G) + (65536 * p.B);
            }
        }

        return ids;
    }

    private async Task<SegmentStreamResponse[]> StreamAsync(IEnumerable<string> files)
    {
        using var call = server.Client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(2));
        var reading = call.ResponseStream.ReadAllAsync().ToArrayAsync().AsTask();
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { Tasks = { SegmentationTask.Panoptic }, MaxInFlight = 4, OverloadPolicy = OverloadPolicy.Queue } });
        var frameId = 0UL;
        foreach (var file in files)
        {
            var image = new Contracts.V1.Image { Encoded = ByteString.CopyFrom(File.ReadAllBytes(Path.Combine(s_clip, file))) };
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = frameId++, Image = image } });
        }

        await call.RequestStream.CompleteAsync();
        return await reading;
    }
}
