using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Tracking;

namespace MaskFormer.Engine.Tests.Tracking;

/// <summary>The run-length tracker against <see cref="ReferenceTracker"/>: the same ids, frame by frame.</summary>
public sealed class SegmentTrackerEquivalenceTests
{
    [Theory]
    [InlineData(1, 0.3f, 5, 8, 0.5f, 2000)]
    [InlineData(2, 0.05f, 0, 1, 0f, 0)]
    [InlineData(3, 0.7f, 2, 3, 0.3f, 150)]
    [InlineData(4, 1f, 1, 8, 0.9f, 2000)]
    [InlineData(5, 0.5f, 3, 5, 0.5f, 90)]
    public void Track_RandomMovingBlobs_SameIdsAndClassesAsThePixelReference(int seed, float threshold, int maxMissed, int voteFrames, float minScore, int maxMissedMs)
    {
        var options = new TrackingOptions
        {
            IouThreshold = threshold,
            MaxMissedFrames = maxMissed,
            ClassVoteFrames = voteFrames,
            MinInstanceScore = minScore,
            MaxMissedTime = TimeSpan.FromMilliseconds(maxMissedMs),
        };
        var fast = new SegmentTracker();
        var reference = new ReferenceTracker();
        var random = new Random(seed);
        var scene = new Scene(random, 61, 47);
        var time = TimeSpan.Zero;
        var (continued, votedOver, untracked) = (false, false, false);
        var seen = new HashSet<int>();

        for (var frame = 0; frame < 40; frame++)
        {
            scene.Step();
            time += TimeSpan.FromMilliseconds(random.Next(10, 60));
            var instances = scene.Instances();
            using var panoptic = scene.Panoptic();
            try
            {
                // Some frames come without a time: tracks then expire by frame count alone.
                var at = frame % 7 == 3 ? (TimeSpan?)null : time;
                var expected = reference.Track(instances, panoptic, options, at);
                var actual = fast.Track(instances, panoptic, options, at);

                Assert.Equal(expected.Instances, actual.InstanceTrackIds);
                Assert.Equal(expected.Panoptic, actual.PanopticTrackIds);
                Assert.Equal(expected.InstanceClasses, actual.InstanceTrackClasses);
                Assert.Equal(expected.PanopticClasses, actual.PanopticTrackClasses);
                continued |= actual.PanopticTrackIds.Concat(actual.InstanceTrackIds).Any(seen.Contains);
                seen.UnionWith(actual.PanopticTrackIds.Concat(actual.InstanceTrackIds).Where(id => id != 0));
                votedOver |= panoptic.Segments.Select((s, i) => s.CategoryId != actual.PanopticTrackClasses[i]).Any(b => b);
                untracked |= actual.InstanceTrackIds.Contains(0);
            }
            finally
            {
                foreach (var instance in instances)
                {
                    instance.Dispose();
                }
            }
        }

        Assert.True(continued || threshold >= 1f, "no track was ever continued: the scene tests nothing");
        Assert.True(votedOver || voteFrames == 1 || threshold >= 1f, "no vote ever overruled a frame's class: the scene tests nothing");
        Assert.True(untracked || minScore == 0f, "every instance was tracked: the score threshold is not tested");
    }

    [Fact]
    public void Track_PreparedOffThePath_SameIdsAsTrackingTheResultDirectly()
    {
        var options = new TrackingOptions();
        var direct = new SegmentTracker();
        var prepared = new SegmentTracker();
        var scene = new Scene(new Random(9), 40, 30);
        for (var frame = 0; frame < 20; frame++)
        {
            scene.Step();
            var instances = scene.Instances();
            using var panoptic = scene.Panoptic();
            var segments = FrameSegments.From(instances, panoptic, options.MinInstanceScore);
            var expected = direct.Track(instances, panoptic, options);
            foreach (var instance in instances)
            {
                instance.Dispose();
            }

            var actual = prepared.Track(segments, options);
            Assert.Equal(expected.InstanceTrackIds, actual.InstanceTrackIds);
            Assert.Equal(expected.PanopticTrackIds, actual.PanopticTrackIds);
            Assert.Equal(expected.InstanceTrackClasses, actual.InstanceTrackClasses);
        }
    }

    // Ragged blobs of three classes that drift, grow, vanish and reappear, sometimes twice in one
    // place (equal IoUs test the tie order), with holes (several runs per row).
    private sealed class Scene(Random random, int width, int height)
    {
        private readonly List<Blob> _blobs = [];

        public void Step()
        {
            _blobs.RemoveAll(_ => random.NextDouble() < 0.1);
            foreach (var blob in _blobs)
            {
                blob.X += random.Next(-3, 4);
                blob.Y += random.Next(-3, 4);
                blob.Radius = Math.Clamp(blob.Radius + random.Next(-1, 2), 2, 14);
                blob.Seed = random.Next();

                // A mislabelled frame now and then, as a model gives.
                blob.ShownClass = random.NextDouble() < 0.15 ? random.Next(3) : blob.Class;
                blob.Score = (float)random.NextDouble();
            }

            while (_blobs.Count < 7 || random.NextDouble() < 0.2)
            {
                var cls = random.Next(3);
                var blob = new Blob { Class = cls, ShownClass = cls, X = random.Next(width), Y = random.Next(height), Radius = random.Next(2, 12), Seed = random.Next() };
                _blobs.Add(blob);
                if (random.NextDouble() < 0.2)
                {
                    _blobs.Add(new Blob { Class = blob.Class, ShownClass = blob.ShownClass, X = blob.X, Y = blob.Y, Radius = blob.Radius, Seed = blob.Seed });
                }
            }
        }

        public List<InstanceMask> Instances()
        {
            var instances = new List<InstanceMask>();
            foreach (var blob in _blobs)
            {
                var mask = new BinaryMask(width, height);
                var box = new PixelBox.Builder();
                long area = 0;
                Paint(blob, (x, y) =>
                {
                    mask.Pixels[(y * width) + x] = 1;
                    box.Add(x, y);
                    area++;
                });
                instances.Add(new InstanceMask(blob.ShownClass, blob.Score, area, box.Build(), mask));
            }

            return instances;
        }

        public PanopticResult Panoptic()
        {
            var ids = new LabelMap(width, height);
            ids.Values.Fill(1);
            for (var i = 0; i < _blobs.Count; i++)
            {
                var id = (ushort)(i + 2);
                Paint(_blobs[i], (x, y) => ids.Values[(y * width) + x] = id);
            }

            var segments = new List<PanopticSegment>();
            for (var id = 1; id < _blobs.Count + 2; id++)
            {
                var box = new PixelBox.Builder();
                long area = 0;
                for (var p = 0; p < ids.Values.Length; p++)
                {
                    if (ids.Values[p] == id)
                    {
                        box.Add(p % width, p / width);
                        area++;
                    }
                }

                if (area > 0)
                {
                    segments.Add(id == 1
                        ? new PanopticSegment(id, 7, false, 1f, area, box.Build())
                        : new PanopticSegment(id, _blobs[id - 2].ShownClass + 3, true, 0.9f, area, box.Build()));
                }
            }

            return new PanopticResult(ids, segments);
        }

        private void Paint(Blob blob, Action<int, int> set)
        {
            var noise = new Random(blob.Seed);
            for (var y = Math.Max(0, blob.Y - blob.Radius); y < Math.Min(height, blob.Y + blob.Radius + 1); y++)
            {
                for (var x = Math.Max(0, blob.X - blob.Radius); x < Math.Min(width, blob.X + blob.Radius + 1); x++)
                {
                    var d = Math.Sqrt(((x - blob.X) * (x - blob.X)) + ((y - blob.Y) * (y - blob.Y)));
                    if (d <= blob.Radius - (noise.NextDouble() * 2) && noise.NextDouble() > 0.08)
                    {
                        set(x, y);
                    }
                }
            }
        }
    }

    private sealed class Blob
    {
        public int Class { get; init; }

        public int ShownClass { get; set; }

        public float Score { get; set; } = 0.9f;

        public int X { get; set; }

        public int Y { get; set; }

        public int Radius { get; set; }

        public int Seed { get; set; }
    }
}
