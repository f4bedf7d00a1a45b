using MaskFormer.Engine.Encoding;

namespace MaskFormer.Engine.Tests.Encoding;

public sealed class MapPatchesTests
{
    public static TheoryData<int> Seeds => [.. Enumerable.Range(1, 40)];

    [Theory]
    [MemberData(nameof(Seeds))]
    public void ChangedAndChange_RandomEdits_AddingTheChangesToTheOldMapGivesTheNewOne(int seed)
    {
        var random = new Random(seed);
        var sampleBits = seed % 2 == 0 ? 8 : 16;
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
            using var change = MapPatches.Change(previous, current, width, r, sampleBits);
            Assert.Equal((r.Width, r.Height), (change.Width, change.Height));
            for (var y = 0; y < r.Height; y++)
            {
                for (var x = 0; x < r.Width; x++)
                {
                    ref var pixel = ref rebuilt[((r.Y + y) * width) + r.X + x];
                    pixel = Add(pixel, change.Row(y)[x], sampleBits);
                }

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

    [Fact]
    public void Change_IdsCrossingAByte_PerByteOrPer16BitSample()
    {
        ushort[] previous = [0x01FF, 0x0100, 7];
        ushort[] current = [0x0200, 0x00FF, 7];

        using var perByte = MapPatches.Change(previous, current, 3, new MapRectangle(0, 0, 3, 1), 8);
        using var perSample = MapPatches.Change(previous, current, 3, new MapRectangle(0, 0, 3, 1), 16);

        // Bytes: 0xFF→0x00 is +1, 0x01→0x02 is +1; 0x00→0xFF is −1 = 0xFF, 0x01→0x00 is 0xFF.
        Assert.Equal([0x0101, 0xFFFF, 0], perByte.Values.ToArray());
        Assert.Equal([0x0001, 0xFFFF, 0], perSample.Values.ToArray());
    }

    // The client's rule: each sample added modulo its size (bytes of a COCO RGB id or an 8-bit label; 16-bit labels whole).
    private static ushort Add(ushort old, ushort change, int sampleBits) => sampleBits == 16
        ? (ushort)(old + change)
        : (ushort)(((old + change) & 0xFF) | ((((old >> 8) + (change >> 8)) & 0xFF) << 8));
}
