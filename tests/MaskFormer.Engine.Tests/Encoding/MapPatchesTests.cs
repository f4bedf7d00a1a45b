using MaskFormer.Engine.Encoding;

namespace MaskFormer.Engine.Tests.Encoding;

public sealed class MapPatchesTests
{
    public static TheoryData<int> Seeds => [.. Enumerable.Range(1, 40)];

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Changed_RandomEdits_CopyingTheRectanglesOverTheOldMapGivesTheNewOne(int seed)
    {
        var random = new Random(seed);
        var (width, height) = (random.Next(1, 70), random.Next(1, 70));
        var previous = new ushort[width * height];
        for (var i = 0; i < previous.Length; i++)
        {
            previous[i] = (ushort)random.Next(0, 4);
        }

        var current = (ushort[])previous.Clone();
        var edits = random.Next(0, 6);
        for (var e = 0; e < edits; e++)
        {
            // Small blobs of changes, as a moving object makes, and now and then a single pixel.
            var (x0, y0) = (random.Next(width), random.Next(height));
            var (w, h) = random.Next(4) == 0 ? (1, 1) : (random.Next(1, 12), random.Next(1, 12));
            for (var y = y0; y < Math.Min(height, y0 + h); y++)
            {
                for (var x = x0; x < Math.Min(width, x0 + w); x++)
                {
                    current[(y * width) + x] = (ushort)(previous[(y * width) + x] + 1 + random.Next(300));
                }
            }
        }

        var rectangles = MapPatches.Changed(previous, current, width, height);

        var rebuilt = (ushort[])previous.Clone();
        var covered = new bool[width * height];
        var lastBottom = -1;
        foreach (var r in rectangles)
        {
            Assert.True(r.Y > lastBottom, "rectangles go top to bottom without overlapping");
            Assert.InRange(r.X + r.Width, 1, width);
            Assert.InRange(r.Y + r.Height, 1, height);
            lastBottom = r.Y + r.Height - 1;
            using var crop = MapPatches.Crop(current, width, r);
            Assert.Equal((r.Width, r.Height), (crop.Width, crop.Height));
            for (var y = 0; y < r.Height; y++)
            {
                crop.Row(y).CopyTo(rebuilt.AsSpan(((r.Y + y) * width) + r.X));
                covered.AsSpan(((r.Y + y) * width) + r.X, r.Width).Fill(true);
            }
        }

        Assert.Equal(current, rebuilt);
        Assert.Equal(edits == 0, rectangles.Count == 0);
        for (var i = 0; i < current.Length; i++)
        {
            Assert.True(covered[i] || current[i] == previous[i], $"pixel {i} changed outside every rectangle");
        }
    }

    [Fact]
    public void Changed_EditsInTheLastColumnAndFarApartRows_TightRectanglesOnePerBand()
    {
        var (width, height) = (10, 40);
        var previous = new ushort[width * height];
        var current = (ushort[])previous.Clone();
        current[(2 * width) + 9] = 5;
        current[(3 * width) + 7] = 5;
        current[(39 * width) + 0] = 1;

        var rectangles = MapPatches.Changed(previous, current, width, height);

        Assert.Equal([new MapRectangle(7, 2, 3, 2), new MapRectangle(0, 39, 1, 1)], rectangles);
    }
}
