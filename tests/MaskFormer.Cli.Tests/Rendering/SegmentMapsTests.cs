using Google.Protobuf;
using MaskFormer.Cli.Rendering;
using MaskFormer.Contracts.V1;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Cli.Tests.Rendering;

public sealed class SegmentMapsTests
{
    [Fact]
    public void FromSemantic_OneClassInTwoPlaces_IsTwoSegmentsEachInTheClassColour()
    {
        // Columns: class 1 | class 2 | class 1.
        var labels = new ushort[6 * 2];
        for (var i = 0; i < labels.Length; i++)
        {
            labels[i] = (ushort)(i % 6 is 2 or 3 ? 2 : 1);
        }

        var map = SegmentMaps.FromSemantic(labels, 6, 2, id => $"class {id}");

        Assert.Equal(3, map.Segments.Count);
        Assert.NotEqual(map.Pixels[0], map.Pixels[5]);
        Assert.Equal(map.Segments[map.Pixels[0]], map.Segments[map.Pixels[5]]);
        Assert.Equal(Palette.ForId(2), map.Segments[map.Pixels[2]].Colour);
        Assert.Equal("class 2", map.Segments[map.Pixels[3]].Label);
        Assert.DoesNotContain(-1, map.Pixels);
    }

    [Fact]
    public void FromPanoptic_SegmentIdZero_IsVoid()
    {
        // Segment 1 (class 3) in the left column, 258 (class 0; encoded across R and G) in the middle, void on the right.
        using var ids = new Image<Rgb24>(3, 2);
        for (var y = 0; y < 2; y++)
        {
            ids[0, y] = new Rgb24(1, 0, 0);
            ids[1, y] = new Rgb24(2, 1, 0);
            ids[2, y] = new Rgb24(0, 0, 0);
        }

        using var png = new MemoryStream();
        ids.SaveAsPng(png);
        var panoptic = new PanopticResult
        {
            SegmentIdPng = ByteString.CopyFrom(png.ToArray()),
            Segments =
            {
                new PanopticSegment { Id = 1, CategoryId = 3, LabelName = "circle", IsThing = true },
                new PanopticSegment { Id = 258, CategoryId = 0, LabelName = "sky" },
            },
        };

        var map = SegmentMaps.FromPanoptic(panoptic, s => s.LabelName);

        Assert.Equal([0, 1, -1, 0, 1, -1], map.Pixels);
        Assert.Equal(Palette.ForId(3), map.Segments[0].Colour);
        Assert.Equal("sky", map.Segments[1].Label);
    }

    [Fact]
    public void FromInstances_OverlappingMasks_HigherScoreShowsAndUncoveredPixelsAreVoid()
    {
        // 3 wide, 2 high; runs go down columns. Low: columns 0-1; high: columns 1-2 of the top row only.
        var low = new Instance { LabelName = "circle", Score = 0.6f, Mask = new Rle { Width = 3, Height = 2, Counts = { 0, 4, 2 } } };
        var high = new Instance { LabelName = "triangle", Score = 0.9f, Mask = new Rle { Width = 3, Height = 2, Counts = { 2, 1, 1, 1, 1 } } };

        var map = SegmentMaps.FromInstances([high, low], 3, 2, (_, i) => i, i => i.LabelName);

        // Row-major: top row low, high, high; bottom row low, low, void.
        Assert.Equal([1, 0, 0, 1, 1, -1], map.Pixels);
        Assert.NotEqual(map.Segments[0].Colour, map.Segments[1].Colour);
    }
}
