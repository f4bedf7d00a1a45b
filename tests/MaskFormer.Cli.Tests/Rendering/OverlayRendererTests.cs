using MaskFormer.Cli.Rendering;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Cli.Tests.Rendering;

public sealed class OverlayRendererTests
{
    private const int Width = 40;
    private const int Height = 30;

    private static readonly Rgb24 s_first = new(200, 30, 30);
    private static readonly Rgb24 s_second = new(30, 60, 220);

    [Fact]
    public void Render_WithoutTags_TintsSegmentsOutlinesBoundariesAndLeavesVoidAsTheImage()
    {
        using var image = TestPictures.Gradient(Width, Height);
        var map = ThreeRegions();
        var options = new OverlayOptions { Alpha = 0.6, Labels = false };

        using var overlay = OverlayRenderer.Render(image, map, [], options);

        var factor = OverlayRenderer.DisplayFactor(Width, Height);
        var (width, height) = (Width * factor, Height * factor);
        var outline = OverlayRenderer.OutlineWidth(width, height);
        int SegmentAt(int x, int y) => map.Pixels[(y / factor * Width) + (x / factor)];
        bool Differs(int x, int y, int s) => x >= 0 && y >= 0 && x < width && y < height && SegmentAt(x, y) != s;
        var (outlined, voids, tinted) = (0, 0, 0);
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var under = image[x / factor, y / factor];
                var segment = SegmentAt(x, y);
                Rgb24 expected;
                if (segment < 0)
                {
                    expected = under;
                    voids++;
                }
                else if (Differs(x - outline, y, segment) || Differs(x + outline, y, segment) || Differs(x, y - outline, segment) || Differs(x, y + outline, segment))
                {
                    expected = map.Segments[segment].Colour;
                    outlined++;
                }
                else
                {
                    expected = Tint(under, map.Segments[segment].Colour, 0.6);
                    tinted++;
                }

                Assert.True(expected == overlay[x, y], $"pixel ({x}, {y}) of segment {segment}: expected {expected}, drew {overlay[x, y]}");
            }
        }

        Assert.True(outlined > 0 && voids > 0 && tinted > 0, $"{outlined} outline, {voids} void, {tinted} tinted pixels");
    }

    [Fact]
    public void Render_WithTags_DrawsATagInEachLabelledSegmentsColour()
    {
        using var image = TestPictures.Gradient(Width, Height);
        var map = ThreeRegions();

        using var plain = OverlayRenderer.Render(image, map, [], new OverlayOptions { Labels = false });
        using var tagged = OverlayRenderer.Render(image, map, [], new OverlayOptions());

        var changed = new List<Rgb24>();
        for (var y = 0; y < plain.Height; y++)
        {
            for (var x = 0; x < plain.Width; x++)
            {
                if (plain[x, y] != tagged[x, y])
                {
                    changed.Add(tagged[x, y]);
                }
            }
        }

        Assert.Contains(s_first, changed);
        Assert.Contains(s_second, changed);
    }

    [Fact]
    public void Render_TagsThatWouldOverlap_AreMovedApartNotDropped()
    {
        // Two thin strips, one above the other, on a void image: their tags would cover each other.
        using var image = TestPictures.Gradient(Width, Height);
        var pixels = new int[Width * Height];
        for (var i = 0; i < pixels.Length; i++)
        {
            pixels[i] = (i / Width) switch { 14 => 0, 15 => 1, _ => -1 };
        }

        var map = new SegmentMap(Width, Height, pixels, [new DrawnSegment(s_first, "UPPER"), new DrawnSegment(s_second, "LOWER")]);

        using var plain = OverlayRenderer.Render(image, map, [], new OverlayOptions { Labels = false });
        using var tagged = OverlayRenderer.Render(image, map, [], new OverlayOptions());

        var changed = new HashSet<Rgb24>();
        for (var y = 0; y < plain.Height; y++)
        {
            for (var x = 0; x < plain.Width; x++)
            {
                if (plain[x, y] != tagged[x, y])
                {
                    changed.Add(tagged[x, y]);
                }
            }
        }

        Assert.Contains(s_first, changed);
        Assert.Contains(s_second, changed);
    }

    [Fact]
    public void Render_Legend_SwatchesAreTheSegmentColoursThemselves()
    {
        using var image = TestPictures.Gradient(Width, Height);
        var legend = new[] { new LegendEntry(s_first, "FIRST"), new LegendEntry(s_second, "SECOND") };

        using var overlay = OverlayRenderer.Render(image, ThreeRegions(), legend, new OverlayOptions());

        var displayWidth = Width * OverlayRenderer.DisplayFactor(Width, Height);
        Assert.True(overlay.Width > displayWidth, "no room was made for the legend");
        var legendPixels = new HashSet<Rgb24>();
        for (var y = 0; y < overlay.Height; y++)
        {
            for (var x = displayWidth; x < overlay.Width; x++)
            {
                legendPixels.Add(overlay[x, y]);
            }
        }

        Assert.Contains(s_first, legendPixels);
        Assert.Contains(s_second, legendPixels);
        Assert.Equal(0, overlay.Width % 2);
        Assert.Equal(0, overlay.Height % 2);
    }

    [Fact]
    public void Tint_KeepsTheColoursHueWhateverThePhotosColour()
    {
        var onGreen = OverlayRenderer.Tint(new Rgb24(0, 200, 0), s_second, 0.6);
        var onRed = OverlayRenderer.Tint(new Rgb24(200, 0, 0), s_second, 0.6);

        // Blue dominates on either photo colour: the legend's blue, only lighter or darker.
        Assert.True(onGreen.B > onGreen.G && onGreen.B > onGreen.R, $"{onGreen}");
        Assert.True(onRed.B > onRed.G && onRed.B > onRed.R, $"{onRed}");
    }

    // Reference: the colour at alpha over the pixel's BT.601 luma, in double precision.
    private static Rgb24 Tint(Rgb24 under, Rgb24 colour, double alpha)
    {
        var luma = (0.299 * under.R) + (0.587 * under.G) + (0.114 * under.B);
        byte Channel(byte c) => (byte)Math.Round((luma * (1 - alpha)) + (c * alpha));
        return new Rgb24(Channel(colour.R), Channel(colour.G), Channel(colour.B));
    }

    // Left half: segment 0; top right: segment 1; bottom right: void.
    private static SegmentMap ThreeRegions()
    {
        var pixels = new int[Width * Height];
        for (var y = 0; y < Height; y++)
        {
            for (var x = 0; x < Width; x++)
            {
                pixels[(y * Width) + x] = x < Width / 2 ? 0 : y < Height / 2 ? 1 : -1;
            }
        }

        return new SegmentMap(Width, Height, pixels, [new DrawnSegment(s_first, "FIRST"), new DrawnSegment(s_second, "B")]);
    }
}
