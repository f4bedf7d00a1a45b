using System.Text.Json;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Tracking;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Engine.Tests.Tracking;

public sealed class SegmentTrackerTests
{
    private static readonly string s_clip = Path.Combine(RepositoryPaths.TinyShapes, "clip");

    [Fact]
    public void Track_GroundTruthClipWithMovingObjects_EachObjectKeepsOneId()
    {
        var tracker = new SegmentTracker();
        var idsByTruth = new Dictionary<int, HashSet<int>>();

        foreach (var (panoptic, truthTrackBySegment) in LoadClip())
        {
            using (panoptic)
            {
                var tracked = tracker.Track(null, panoptic, new TrackingOptions());
                for (var i = 0; i < panoptic.Segments.Count; i++)
                {
                    var segment = panoptic.Segments[i];
                    if (!segment.IsThing)
                    {
                        Assert.Equal(segment.CategoryId, tracked.PanopticTrackIds[i]);
                        continue;
                    }

                    var truth = truthTrackBySegment[segment.Id];
                    if (!idsByTruth.TryGetValue(truth, out var ids))
                    {
                        idsByTruth[truth] = ids = [];
                    }

                    ids.Add(tracked.PanopticTrackIds[i]);
                }
            }
        }

        Assert.Equal(3, idsByTruth.Count);
        Assert.All(idsByTruth.Values, ids => Assert.Single(ids));
        Assert.Equal(3, idsByTruth.Values.Select(ids => ids.Single()).Distinct().Count());
    }

    [Fact]
    public void Track_ObjectGoneLongerThanMaxMissedFrames_GetsANewId()
    {
        var tracker = new SegmentTracker();
        var options = new TrackingOptions { MaxMissedFrames = 2 };
        var frames = LoadClip().ToArray();
        var (first, _) = frames[0];

        var before = tracker.Track(null, first, options).PanopticTrackIds;
        for (var i = 0; i < 3; i++)
        {
            tracker.Track(null, new PanopticResult(new LabelMap(1, 1), []), options);
        }

        var after = tracker.Track(null, first, options).PanopticTrackIds;
        var things = first.Segments.Select((s, i) => (s, i)).Where(p => p.s.IsThing).Select(p => p.i).ToArray();
        Assert.NotEmpty(things);
        Assert.All(things, i => Assert.NotEqual(before[i], after[i]));
        foreach (var (panoptic, _) in frames)
        {
            panoptic.Dispose();
        }
    }

    [Fact]
    public void Track_SameObjectTwiceButAnotherClass_DoesNotInheritTheId()
    {
        var tracker = new SegmentTracker();
        using var mask = new BinaryMask(10, 10);
        mask.Row(3).Slice(2, 5).Fill(1);
        var box = new PixelBox(2, 3, 5, 1);

        var first = tracker.Track([new InstanceMask(3, 0.9f, 5, box, mask)], null, new TrackingOptions()).InstanceTrackIds;
        var same = tracker.Track([new InstanceMask(3, 0.9f, 5, box, mask)], null, new TrackingOptions()).InstanceTrackIds;
        var otherClass = tracker.Track([new InstanceMask(4, 0.9f, 5, box, mask)], null, new TrackingOptions()).InstanceTrackIds;

        Assert.Equal(first[0], same[0]);
        Assert.NotEqual(first[0], otherClass[0]);
    }

    // Each clip frame's ground truth as a panoptic result, with the ground-truth track of each segment.
    private static IEnumerable<(PanopticResult Panoptic, Dictionary<int, int> TruthTrackBySegment)> LoadClip()
    {
        using var tracks = JsonDocument.Parse(File.ReadAllText(Path.Combine(s_clip, "tracks.json")));
        var isThing = tracks.RootElement.GetProperty("categories").EnumerateArray().ToDictionary(c => c.GetProperty("id").GetInt32(), c => c.GetProperty("isthing").GetInt32() == 1);
        foreach (var frame in tracks.RootElement.GetProperty("frames").EnumerateArray().ToArray())
        {
            using var png = SixLabors.ImageSharp.Image.Load<Rgb24>(Path.Combine(s_clip, frame.GetProperty("panoptic_file_name").GetString()!));
            var ids = new LabelMap(png.Width, png.Height);
            var areas = new Dictionary<int, long>();
            var boxes = new Dictionary<int, PixelBox.Builder>();
            for (var y = 0; y < png.Height; y++)
            {
                for (var x = 0; x < png.Width; x++)
                {
                    var p = png[x, y];
                    var id = p.R + (256 * p.G) + (65536 * p.B);
                    ids.Values[(y * png.Width) + x] = (ushort)id;
                    if (id != 0)
                    {
                        areas[id] = areas.GetValueOrDefault(id) + 1;
                        var builder = boxes.GetValueOrDefault(id);
                        builder.Add(x, y);
                        boxes[id] = builder;
                    }
                }
            }

            var objects = frame.GetProperty("objects").EnumerateArray().ToDictionary(o => o.GetProperty("segment_id").GetInt32());
            var categories = CategoryBySegment(frame, objects);
            var segments = areas.Keys.Order()
                .Select(id => new PanopticSegment(id, categories[id], isThing[categories[id]], 1f, areas[id], boxes[id].Build()))
                .ToArray();
            yield return (new PanopticResult(ids, segments), objects.ToDictionary(o => o.Key, o => o.Value.GetProperty("track_id").GetInt32()));
        }
    }

    private static Dictionary<int, int> CategoryBySegment(JsonElement frame, Dictionary<int, JsonElement> objects)
    {
        var categories = objects.ToDictionary(o => o.Key, o => o.Value.GetProperty("category_id").GetInt32());
        if (frame.TryGetProperty("segments_info", out var info))
        {
            foreach (var segment in info.EnumerateArray())
            {
                categories[segment.GetProperty("id").GetInt32()] = segment.GetProperty("category_id").GetInt32();
            }
        }

        return categories;
    }
}
