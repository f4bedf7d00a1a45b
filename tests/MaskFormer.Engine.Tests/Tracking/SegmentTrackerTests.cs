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
    public void Track_GroundTruthClip_EachObjectStuffAndThingsKeepsOneIdFromOneIdSpace()
    {
        var tracker = new SegmentTracker();
        var idsByObject = new Dictionary<string, HashSet<int>>();
        var frame = 0;

        foreach (var (panoptic, truthTrackBySegment) in LoadClip())
        {
            using (panoptic)
            {
                var tracked = tracker.Track(null, panoptic, new TrackingOptions(), TimeSpan.FromMilliseconds(40 * frame++));
                Assert.DoesNotContain(0, tracked.PanopticTrackIds);
                Assert.Equal(tracked.PanopticTrackIds.Count, tracked.PanopticTrackIds.Distinct().Count());
                for (var i = 0; i < panoptic.Segments.Count; i++)
                {
                    var segment = panoptic.Segments[i];
                    var key = segment.IsThing ? $"thing {truthTrackBySegment[segment.Id]}" : $"stuff {segment.CategoryId}";
                    if (!idsByObject.TryGetValue(key, out var ids))
                    {
                        idsByObject[key] = ids = [];
                    }

                    ids.Add(tracked.PanopticTrackIds[i]);
                    Assert.Equal(segment.CategoryId, tracked.PanopticTrackClasses[i]);
                }
            }
        }

        Assert.Equal(3, idsByObject.Keys.Count(k => k.StartsWith("thing", StringComparison.Ordinal)));
        Assert.All(idsByObject.Values, ids => Assert.Single(ids));
        var all = idsByObject.Values.Select(ids => ids.Single()).ToArray();
        Assert.Equal(all.Length, all.Distinct().Count());

        // One counter from 1: as many ids as objects, however many frames.
        Assert.Equal(all.Length, all.Max());
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
        Assert.NotEmpty(after);
        Assert.All(Enumerable.Range(0, after.Count), i => Assert.NotEqual(before[i], after[i]));
        foreach (var (panoptic, _) in frames)
        {
            panoptic.Dispose();
        }
    }

    [Theory]
    [InlineData(900, true)]
    [InlineData(1100, false)]
    public void Track_ObjectGoneForAWhile_KeepsItsIdOnlyWithinMaxMissedTime(int goneMs, bool keeps)
    {
        var tracker = new SegmentTracker();
        var options = new TrackingOptions { MaxMissedFrames = 100, MaxMissedTime = TimeSpan.FromSeconds(1) };
        using var mask = Square(10, 10, 2, 2, 5);
        using var empty = new BinaryMask(10, 10);

        var before = tracker.Track([Instance(3, mask)], null, options, TimeSpan.FromSeconds(5)).InstanceTrackIds;
        tracker.Track([], null, options, TimeSpan.FromSeconds(5) + TimeSpan.FromMilliseconds(goneMs / 2));
        var after = tracker.Track([Instance(3, mask)], null, options, TimeSpan.FromSeconds(5) + TimeSpan.FromMilliseconds(goneMs)).InstanceTrackIds;

        Assert.Equal(keeps, before[0] == after[0]);
    }

    [Fact]
    public void Track_ObjectMislabelledInSomeFrames_KeepsItsIdAndTheVotedClass()
    {
        var tracker = new SegmentTracker();
        var options = new TrackingOptions { ClassVoteFrames = 5 };
        var idsByTruth = new Dictionary<int, HashSet<int>>();
        var frame = 0;
        var flipped = 0;
        foreach (var (panoptic, truthTrackBySegment) in LoadClip())
        {
            using (panoptic)
            {
                // Every third frame the model calls one thing (in turn) by another thing class.
                var segments = panoptic.Segments.ToArray();
                var things = Enumerable.Range(0, segments.Length).Where(i => segments[i].IsThing).ToArray();
                var flip = frame % 3 == 2 ? things[frame / 3 % things.Length] : -1;
                if (flip >= 0)
                {
                    segments[flip] = segments[flip] with { CategoryId = 3 + ((segments[flip].CategoryId - 3 + 1) % 3) };
                    flipped++;
                }

                var shown = new PanopticResult(panoptic.SegmentIds, segments);
                var tracked = tracker.Track(null, shown, options);
                for (var i = 0; i < segments.Length; i++)
                {
                    // The track's class is the true one; the frame's own class is still what the model said.
                    Assert.Equal(panoptic.Segments[i].CategoryId, tracked.PanopticTrackClasses[i]);
                    if (segments[i].IsThing)
                    {
                        var truth = truthTrackBySegment[segments[i].Id];
                        if (!idsByTruth.TryGetValue(truth, out var ids))
                        {
                            idsByTruth[truth] = ids = [];
                        }

                        ids.Add(tracked.PanopticTrackIds[i]);
                    }
                }
            }

            frame++;
        }

        Assert.True(flipped >= 4);
        Assert.Equal(3, idsByTruth.Count);
        Assert.All(idsByTruth.Values, ids => Assert.Single(ids));
    }

    [Fact]
    public void Track_ClassChangesForGood_TrackFollowsOnceMostRecentFramesAgree()
    {
        var tracker = new SegmentTracker();
        var options = new TrackingOptions { ClassVoteFrames = 4 };
        using var mask = Square(10, 10, 2, 2, 5);
        var classes = new List<int>();
        var ids = new HashSet<int>();
        foreach (var label in new[] { 3, 3, 3, 4, 4, 4, 4 })
        {
            var tracked = tracker.Track([Instance(label, mask)], null, options);
            ids.Add(tracked.InstanceTrackIds[0]);
            classes.Add(tracked.InstanceTrackClasses[0]);
        }

        Assert.Single(ids);

        // Window of 4: [3,3,3,4] and [3,3,4,4] (a tie keeps 3), then [3,4,4,4].
        Assert.Equal(new[] { 3, 3, 3, 3, 3, 4, 4 }, classes);
    }

    [Fact]
    public void Track_VoteWindowChangedForAnExistingTrack_TheNewWindowApplies()
    {
        // A stream's later StreamConfig changes class_vote_frames: tracks that exist already follow it.
        var tracker = new SegmentTracker();
        using var mask = Square(10, 10, 2, 2, 5);
        var classes = new List<int>();
        var ids = new HashSet<int>();
        foreach (var (label, window) in new[] { (3, 8), (3, 8), (3, 8), (4, 1), (4, 1), (3, 3), (4, 3) })
        {
            var tracked = tracker.Track([Instance(label, mask)], null, new TrackingOptions { ClassVoteFrames = window });
            ids.Add(tracked.InstanceTrackIds[0]);
            classes.Add(tracked.InstanceTrackClasses[0]);
        }

        Assert.Single(ids);

        // Window 1 follows each frame; then window 3: [4,3] is a tie that keeps 4, and [4,3,4] gives 4.
        Assert.Equal(new[] { 3, 3, 3, 4, 4, 4, 4 }, classes);
    }

    [Fact]
    public void Track_InstancesAndPanopticOfTheSameObjects_ShareIdsAndLowScoresAreNotTracked()
    {
        var tracker = new SegmentTracker();
        var idsByTruth = new Dictionary<int, HashSet<int>>();
        var maxId = 0;
        foreach (var (panoptic, truthTrackBySegment) in LoadClip())
        {
            using (panoptic)
            {
                var things = panoptic.Segments.Where(s => s.IsThing).ToArray();
                var instances = things.Select(s => new InstanceMask(s.CategoryId, 0.9f, s.Area, s.Box, MaskOf(panoptic, s.Id))).ToList();

                // A low-scoring near-duplicate of each object, as the model gives at score threshold 0.
                instances.AddRange(things.Select(s => new InstanceMask(s.CategoryId, 0.1f, s.Area, s.Box, MaskOf(panoptic, s.Id))));
                try
                {
                    var tracked = tracker.Track(instances, panoptic, new TrackingOptions());
                    for (var i = 0; i < things.Length; i++)
                    {
                        var p = panoptic.Segments.ToList().IndexOf(things[i]);
                        Assert.Equal(tracked.PanopticTrackIds[p], tracked.InstanceTrackIds[i]);
                        Assert.Equal(0, tracked.InstanceTrackIds[things.Length + i]);
                        Assert.Equal(things[i].CategoryId, tracked.InstanceTrackClasses[things.Length + i]);
                        var truth = truthTrackBySegment[things[i].Id];
                        if (!idsByTruth.TryGetValue(truth, out var ids))
                        {
                            idsByTruth[truth] = ids = [];
                        }

                        ids.Add(tracked.InstanceTrackIds[i]);
                    }

                    maxId = Math.Max(maxId, tracked.PanopticTrackIds.Concat(tracked.InstanceTrackIds).Max());
                }
                finally
                {
                    instances.ForEach(i => i.Dispose());
                }
            }
        }

        Assert.All(idsByTruth.Values, ids => Assert.Single(ids));

        // Instances take their panoptic segment's id: no second set of ids, however many frames.
        var (first, _) = LoadClip().First();
        using (first)
        {
            Assert.Equal(first.Segments.Count, maxId);
        }
    }

    [Theory]
    [InlineData(0f, 5, 2, 8, 0.5f, "IouThreshold")]
    [InlineData(0.3f, -1, 2, 8, 0.5f, "MaxMissedFrames")]
    [InlineData(0.3f, 5, -1, 8, 0.5f, "MaxMissedTime")]
    [InlineData(0.3f, 5, 2, 0, 0.5f, "ClassVoteFrames")]
    [InlineData(0.3f, 5, 2, 8, 1.5f, "MinInstanceScore")]
    [InlineData(0.3f, 5, 2, 8, 0.5f, null)]
    public void Check_SettingOutOfRange_NamesIt(float iou, int missed, int missedSeconds, int vote, float score, string? named)
    {
        var options = new TrackingOptions { IouThreshold = iou, MaxMissedFrames = missed, MaxMissedTime = TimeSpan.FromSeconds(missedSeconds), ClassVoteFrames = vote, MinInstanceScore = score };

        var error = options.Check();

        if (named is null)
        {
            Assert.Null(error);
        }
        else
        {
            Assert.StartsWith(named, error);
        }
    }

    [Fact]
    public void Track_ClipWhoseFrameSizeChanges_EachObjectKeepsItsId()
    {
        // A latency contract lowers a stream's output size and raises it again: the same objects, fewer pixels.
        var tracker = new SegmentTracker();
        var scales = new[] { 1.0, 0.75, 0.5, 0.3, 0.5, 1.0, 0.6, 1.0 };
        var idsByObject = new Dictionary<string, HashSet<int>>();
        var sizes = new HashSet<(int, int)>();
        var frame = 0;
        foreach (var (original, truthTrackBySegment) in LoadClip())
        {
            using (original)
            {
                var scale = scales[frame % scales.Length];
                var (width, height) = ((int)Math.Round(original.SegmentIds.Width * scale), (int)Math.Round(original.SegmentIds.Height * scale));
                using var panoptic = Resample(original, width, height);
                sizes.Add((width, height));
                var tracked = tracker.Track(null, panoptic, new TrackingOptions(), TimeSpan.FromMilliseconds(40 * frame++));
                for (var i = 0; i < panoptic.Segments.Count; i++)
                {
                    var segment = panoptic.Segments[i];
                    var key = segment.IsThing ? $"thing {truthTrackBySegment[segment.Id]}" : $"stuff {segment.CategoryId}";
                    idsByObject.TryAdd(key, []);
                    idsByObject[key].Add(tracked.PanopticTrackIds[i]);
                }
            }
        }

        Assert.True(sizes.Count >= 4, $"{sizes.Count} frame sizes");
        Assert.Equal(3, idsByObject.Keys.Count(k => k.StartsWith("thing", StringComparison.Ordinal)));
        Assert.All(idsByObject, pair => Assert.True(pair.Value.Count == 1, $"{pair.Key}: ids {string.Join(", ", pair.Value)}"));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Resized_RandomMasks_EqualsNearestNeighbourOfTheirPixels(int seed)
    {
        var random = new Random(seed);
        for (var n = 0; n < 50; n++)
        {
            var (width, height) = (random.Next(1, 60), random.Next(1, 60));
            var (toWidth, toHeight) = (random.Next(1, 90), random.Next(1, 90));
            var mask = new BinaryMask(width, height);
            var builder = new PixelBox.Builder();
            for (var p = 0; p < mask.Pixels.Length; p++)
            {
                // Blobs rather than noise, with an empty mask now and then.
                var (x, y) = (p % width, p / width);
                if (n % 10 != 0 && Math.Sin((x * 0.3) + seed) + Math.Cos(y * 0.25 * seed) > 0.6)
                {
                    mask.Pixels[p] = 1;
                    builder.Add(x, y);
                }
            }

            var box = builder.Build();
            var resized = RunMask.FromBinary(mask, box, 0).Resized(width, height, toWidth, toHeight);

            var want = new byte[toWidth * toHeight];
            for (var y = 0; y < toHeight; y++)
            {
                for (var x = 0; x < toWidth; x++)
                {
                    want[(y * toWidth) + x] = mask.Pixels[(Nearest(y, height, toHeight) * width) + Nearest(x, width, toWidth)];
                }
            }

            var got = new byte[toWidth * toHeight];
            for (var y = resized.Box.Y; y < resized.Box.Y + resized.Box.Height; y++)
            {
                var runs = resized.RowRuns(y);
                for (var i = 0; i < runs.Length; i += 2)
                {
                    got.AsSpan((y * toWidth) + runs[i], runs[i + 1] - runs[i]).Fill(1);
                }
            }

            Assert.True(want.AsSpan().SequenceEqual(got), $"seed {seed}, mask {n}: {width}x{height} to {toWidth}x{toHeight}");
            Assert.Equal(want.Count(b => b != 0), resized.PixelCount);
            Assert.Equal(resized.PixelCount, resized.Area);
        }
    }

    // The old coordinate nearest new coordinate `at`'s pixel centre, from `from` pixels to `to`.
    private static int Nearest(int at, int from, int to) => ((2 * at) + 1) * from / (2 * to);

    // The panoptic result at another size, nearest neighbour at pixel centres (as a smaller output would
    // draw the same segments), areas and boxes counted again; segments that vanish are left out.
    private static PanopticResult Resample(PanopticResult panoptic, int width, int height)
    {
        var (source, ids) = (panoptic.SegmentIds, new LabelMap(width, height));
        var areas = new Dictionary<int, long>();
        var boxes = new Dictionary<int, PixelBox.Builder>();
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var id = source.Values[(Nearest(y, source.Height, height) * source.Width) + Nearest(x, source.Width, width)];
                ids.Values[(y * width) + x] = id;
                if (id != 0)
                {
                    areas[id] = areas.GetValueOrDefault(id) + 1;
                    var builder = boxes.GetValueOrDefault(id);
                    builder.Add(x, y);
                    boxes[id] = builder;
                }
            }
        }

        var segments = panoptic.Segments.Where(s => areas.ContainsKey(s.Id))
            .Select(s => s with { Area = areas[s.Id], Box = boxes[s.Id].Build() })
            .ToArray();
        return new PanopticResult(ids, segments);
    }

    private static BinaryMask Square(int width, int height, int x, int y, int size)
    {
        var mask = new BinaryMask(width, height);
        for (var r = y; r < y + size; r++)
        {
            mask.Row(r).Slice(x, size).Fill(1);
        }

        return mask;
    }

    private static InstanceMask Instance(int label, BinaryMask mask)
    {
        var box = new PixelBox.Builder();
        long area = 0;
        for (var p = 0; p < mask.Pixels.Length; p++)
        {
            if (mask.Pixels[p] != 0)
            {
                box.Add(p % mask.Width, p / mask.Width);
                area++;
            }
        }

        return new InstanceMask(label, 0.9f, area, box.Build(), mask);
    }

    private static BinaryMask MaskOf(PanopticResult panoptic, int id)
    {
        var map = panoptic.SegmentIds;
        var mask = new BinaryMask(map.Width, map.Height);
        for (var p = 0; p < map.Values.Length; p++)
        {
            mask.Pixels[p] = (byte)(map.Values[p] == id ? 1 : 0);
        }

        return mask;
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
