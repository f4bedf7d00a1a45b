using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Tracking;

namespace MaskFormer.Engine.Tests.Tracking;

/// <summary>
/// The bit-unpacked masks a frame's matching uses against plain pixel counting, on boxes many words
/// wide, and the tracker on many large, heavily overlapping, speckled instances (every pair above the
/// threshold: the case the lazy matching and the bits are for) against <see cref="ReferenceTracker"/>.
/// </summary>
public sealed class MaskBitsTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Intersection_RandomSpeckledMasks_CountsWhatThePixelsShare(int seed)
    {
        var random = new Random(seed);
        const int Width = 300, Height = 90;
        for (var trial = 0; trial < 40; trial++)
        {
            using var a = Speckled(random, Width, Height);
            using var b = Speckled(random, Width, Height);
            var (runsA, runsB) = (RunMask.FromBinary(a.Mask, a.Box, a.Area), RunMask.FromBinary(b.Mask, b.Box, b.Area));
            long expected = 0;
            for (var p = 0; p < Width * Height; p++)
            {
                expected += a.Mask.Pixels[p] != 0 && b.Mask.Pixels[p] != 0 ? 1 : 0;
            }

            using var bitsB = new MaskBits(runsB);
            using var bitsA = new MaskBits(runsA);
            Assert.Equal(expected, runsA.Intersection(runsB));
            Assert.Equal(expected, runsA.Intersection(bitsB));
            Assert.Equal(expected, runsB.Intersection(bitsA));
            Assert.Equal(runsA.PixelCount, runsA.Intersection(bitsA));
            Assert.Equal(expected, bitsA.Intersection(bitsB));
            Assert.Equal(expected, bitsB.Intersection(bitsA));
            Assert.Equal(runsA.IoU(runsB), runsB.IoU(runsA, bitsA));
            Assert.Equal(runsA.IoU(runsB), runsA.IoU(bitsA, runsB, bitsB));
        }
    }

    [Theory]
    [InlineData(4, 0.3f)]
    [InlineData(5, 0.1f)]
    [InlineData(6, 0.6f)]
    public void Track_ManyLargeOverlappingSpeckledInstances_SameIdsAsThePixelReference(int seed, float threshold)
    {
        var options = new TrackingOptions { IouThreshold = threshold, MinInstanceScore = 0.2f };
        var random = new Random(seed);
        var fast = new SegmentTracker();
        var reference = new ReferenceTracker();
        var objects = Enumerable.Range(0, 24).Select(_ => Ellipse.Random(random, 200, 70)).ToList();
        var continued = false;
        for (var frame = 0; frame < 6; frame++)
        {
            // Objects drift and are speckled anew; now and then one leaves and another comes.
            objects = [.. objects.Select(o => random.NextDouble() < 0.1 ? Ellipse.Random(random, 200, 70) : o.Moved(random))];
            var instances = objects.Select(o => Speckled(random, 200, 70, o)).ToList();
            try
            {
                var expected = reference.Track(instances, null, options);
                var actual = fast.Track(instances, null, options);
                Assert.Equal(expected.Instances, actual.InstanceTrackIds);
                Assert.Equal(expected.InstanceClasses, actual.InstanceTrackClasses);
                continued |= frame > 0 && actual.InstanceTrackIds.Any(id => id is > 0 and <= 24);
            }
            finally
            {
                foreach (var instance in instances)
                {
                    instance.Dispose();
                }
            }
        }

        Assert.True(continued, "no track was ever continued: the scene tests nothing");
    }

    private static InstanceMask Speckled(Random random, int width, int height) => Speckled(random, width, height, Ellipse.Random(random, width, height));

    // An ellipse over much of the image with a random fraction of its pixels dropped, so most rows
    // hold many runs and boxes span several 64-bit words, starting anywhere.
    private static InstanceMask Speckled(Random random, int width, int height, Ellipse ellipse)
    {
        var mask = new BinaryMask(width, height);
        var box = new PixelBox.Builder();
        long area = 0;
        var (cx, cy, rx, ry, keep) = (ellipse.X, ellipse.Y, ellipse.RadiusX, ellipse.RadiusY, ellipse.Keep);
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var (dx, dy) = ((x - cx) / (double)rx, (y - cy) / (double)ry);
                if ((dx * dx) + (dy * dy) <= 1 && random.NextDouble() < keep)
                {
                    mask.Pixels[(y * width) + x] = 1;
                    box.Add(x, y);
                    area++;
                }
            }
        }

        if (area == 0)
        {
            mask.Pixels[0] = 1;
            box.Add(0, 0);
            area = 1;
        }

        return new InstanceMask(random.Next(3), (float)random.NextDouble(), area, box.Build(), mask);
    }

    private sealed record Ellipse(int X, int Y, int RadiusX, int RadiusY, double Keep)
    {
        public static Ellipse Random(Random random, int width, int height) =>
            new(random.Next(width), random.Next(height), random.Next(20, width), random.Next(5, height), 0.7 + (random.NextDouble() * 0.3));

        public Ellipse Moved(Random random) => this with { X = X + random.Next(-3, 4), Y = Y + random.Next(-2, 3) };
    }
}
