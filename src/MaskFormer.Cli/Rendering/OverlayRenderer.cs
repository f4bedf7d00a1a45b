using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Cli.Rendering;

/// <summary>A legend line: the swatch colour and its text.</summary>
internal sealed record LegendEntry(Rgb24 Colour, string Text);

/// <summary>How an overlay is drawn.</summary>
internal sealed record OverlayOptions
{
    /// <summary>Strength of a segment's colour over the image's brightness, in [0, 1].</summary>
    public double Alpha { get; init; } = 0.6;

    public bool Outlines { get; init; } = true;

    public bool Labels { get; init; } = true;
}

/// <summary>
/// Draws a <see cref="SegmentMap"/> over its image: each segment in its colour over the image's
/// brightness (so the hue is the legend's, whatever the photo's colour), outlined in the swatch colour
/// itself, with a tag at its most interior pixel; void pixels stay the image. A legend goes to the
/// right. Small images are enlarged by an integer factor first so a person can see the shapes.
/// </summary>
internal static class OverlayRenderer
{
    private const int MinimumDisplaySide = 320;

    private static readonly int[] s_tagShifts = [0, -1, 1];

    /// <summary>The integer enlargement for an image of this size (1 when it is big enough).</summary>
    public static int DisplayFactor(int width, int height) =>
        Math.Max(1, (int)Math.Ceiling(MinimumDisplaySide / (double)Math.Min(width, height)));

    public static Image<Rgb24> Render(Image<Rgb24> image, SegmentMap map, IReadOnlyList<LegendEntry> legend, OverlayOptions options)
    {
        if (image.Width != map.Width || image.Height != map.Height)
        {
            throw new InvalidDataException($"The result is {map.Width}x{map.Height}, the image {image.Width}x{image.Height}.");
        }

        var factor = DisplayFactor(image.Width, image.Height);
        var (width, height) = (image.Width * factor, image.Height * factor);
        var fontScale = Math.Clamp(Math.Min(width, height) / 160, 1, 4);
        var lineHeight = (BitmapFont.GlyphHeight + 4) * fontScale;
        var legendWidth = legend.Count == 0 ? 0 : (lineHeight * 2) + legend.Max(e => BitmapFont.Measure(e.Text, fontScale));
        // Even sides, as video encoders with 4:2:0 chroma require.
        var canvasWidth = (width + legendWidth + 1) & ~1;
        var canvasHeight = (Math.Max(height, (legend.Count + 1) * lineHeight) + 1) & ~1;
        var canvas = new Image<Rgb24>(canvasWidth, canvasHeight, new Rgb24(255, 255, 255));

        var source = new Rgb24[image.Width * image.Height];
        image.CopyPixelDataTo(source);
        Paint(canvas, source, map, factor, options);
        if (options.Labels)
        {
            DrawTags(canvas, map, factor, fontScale);
        }

        for (var i = 0; i < legend.Count; i++)
        {
            var top = (lineHeight / 2) + (i * lineHeight);
            var left = width + (lineHeight / 2);
            Fill(canvas, left, top, lineHeight - 4, lineHeight - 4, new Rgb24(64, 64, 64));
            Fill(canvas, left + 1, top + 1, lineHeight - 6, lineHeight - 6, legend[i].Colour);
            BitmapFont.Draw(canvas, legend[i].Text, width + (lineHeight * 3 / 2), top + fontScale, fontScale, new Rgb24(0, 0, 0));
        }

        return canvas;
    }

    /// <summary>A segment's fill: its colour at <paramref name="alpha"/> over the pixel's luma (BT.601).</summary>
    public static Rgb24 Tint(Rgb24 pixel, Rgb24 colour, double alpha)
    {
        var luma = (0.299 * pixel.R) + (0.587 * pixel.G) + (0.114 * pixel.B);
        return new Rgb24(Mix(luma, colour.R, alpha), Mix(luma, colour.G, alpha), Mix(luma, colour.B, alpha));
    }

    /// <summary>Outline width in display pixels on each side of a boundary.</summary>
    public static int OutlineWidth(int displayWidth, int displayHeight) => Math.Clamp(Math.Min(displayWidth, displayHeight) / 180, 1, 4);

    public static ushort[] DecodeLabelMap(byte[] png, int bitsPerPixel, int width, int height)
    {
        using var map = Image.Load<L16>(png);
        if (map.Width != width || map.Height != height)
        {
            throw new InvalidDataException($"The label map is {map.Width}x{map.Height}, the image {width}x{height}.");
        }

        var labels = new ushort[width * height];
        var isEightBit = bitsPerPixel == 8;
        map.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var source = MemoryMarshal.Cast<L16, ushort>(rows.GetRowSpan(y));
                for (var x = 0; x < source.Length; x++)
                {
                    // ImageSharp widens 8-bit grey v to 16-bit v * 257; undo that for 8-bit maps.
                    labels[(y * width) + x] = isEightBit ? (ushort)(source[x] / 257) : source[x];
                }
            }
        });
        return labels;
    }

    private static void Paint(Image<Rgb24> canvas, Rgb24[] source, SegmentMap map, int factor, OverlayOptions options)
    {
        var (width, height) = (map.Width * factor, map.Height * factor);
        var outline = options.Outlines ? OutlineWidth(width, height) : 0;
        var pixels = map.Pixels;
        canvas.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < height; y++)
            {
                var row = rows.GetRowSpan(y);
                var sourceRow = y / factor * map.Width;
                for (var x = 0; x < width; x++)
                {
                    var at = sourceRow + (x / factor);
                    var segment = pixels[at];
                    if (segment < 0)
                    {
                        row[x] = source[at];
                        continue;
                    }

                    var colour = map.Segments[segment].Colour;
                    row[x] = outline > 0 && IsBoundary(x, y, segment, outline)
                        ? colour
                        : Tint(source[at], colour, options.Alpha);
                }
            }
        });

        // A pixel is on a boundary when the segment `distance` display pixels away (inside the image) differs.
        bool IsBoundary(int x, int y, int segment, int distance) =>
            Differs(x - distance, y, segment) || Differs(x + distance, y, segment) || Differs(x, y - distance, segment) || Differs(x, y + distance, segment);

        bool Differs(int x, int y, int segment) =>
            x >= 0 && y >= 0 && x < width && y < height && pixels[(y / factor * map.Width) + (x / factor)] != segment;
    }

    private static void DrawTags(Image<Rgb24> canvas, SegmentMap map, int factor, int fontScale)
    {
        var (anchors, areas) = Anchors(map);
        var minimumArea = Math.Max(16, map.Width * map.Height / 500);
        var (width, height) = (map.Width * factor, map.Height * factor);
        var placed = new List<Rectangle>();
        foreach (var segment in Enumerable.Range(0, map.Segments.Count).OrderByDescending(s => areas[s]))
        {
            var text = map.Segments[segment].Label;
            if (text.Length == 0 || areas[segment] < minimumArea)
            {
                continue;
            }

            var padding = fontScale;
            var tagWidth = BitmapFont.Measure(text, fontScale) + padding;
            var tagHeight = (BitmapFont.GlyphHeight * fontScale) + (2 * padding);
            var (ay, ax) = Math.DivRem(anchors[segment], map.Width);
            var left = Math.Clamp((ax * factor) + (factor / 2) - (tagWidth / 2), 0, Math.Max(0, width - tagWidth));
            var centre = (ay * factor) + (factor / 2) - (tagHeight / 2);

            // At the segment's most interior point, else just above or below it, never over another tag.
            Rectangle? free = null;
            foreach (var shift in s_tagShifts)
            {
                var candidate = new Rectangle(left, Math.Clamp(centre + (shift * (tagHeight + 1)), 0, Math.Max(0, height - tagHeight)), tagWidth, tagHeight);
                if (!placed.Any(r => r.IntersectsWith(candidate)))
                {
                    free = candidate;
                    break;
                }
            }

            if (free is not { } rectangle)
            {
                continue;
            }

            placed.Add(rectangle);
            var top = rectangle.Top;
            var colour = map.Segments[segment].Colour;
            Fill(canvas, left, top, tagWidth, tagHeight, new Rgb24((byte)(colour.R / 2), (byte)(colour.G / 2), (byte)(colour.B / 2)));
            Fill(canvas, left + 1, top + 1, tagWidth - 2, tagHeight - 2, colour);
            var ink = (0.299 * colour.R) + (0.587 * colour.G) + (0.114 * colour.B) > 140 ? new Rgb24(0, 0, 0) : new Rgb24(255, 255, 255);
            BitmapFont.Draw(canvas, text, left + padding, top + padding, fontScale, ink);
        }
    }

    /// <summary>
    /// Per segment, its area and its most interior pixel (farthest from any other segment or the image
    /// edge, by a 3-4 chamfer distance), where its tag goes.
    /// </summary>
    private static (int[] Anchors, int[] Areas) Anchors(SegmentMap map)
    {
        var (width, height, pixels) = (map.Width, map.Height, map.Pixels);
        var distance = new int[pixels.Length];
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var i = (y * width) + x;
                var edge = x == 0 || y == 0 || x == width - 1 || y == height - 1
                    || pixels[i - 1] != pixels[i] || pixels[i + 1] != pixels[i] || pixels[i - width] != pixels[i] || pixels[i + width] != pixels[i];
                distance[i] = edge ? 3 : int.MaxValue / 2;
            }
        }

        for (var y = 1; y < height; y++)
        {
            for (var x = 1; x < width - 1; x++)
            {
                var i = (y * width) + x;
                distance[i] = Math.Min(distance[i], Math.Min(Math.Min(distance[i - 1] + 3, distance[i - width] + 3), Math.Min(distance[i - width - 1] + 4, distance[i - width + 1] + 4)));
            }
        }

        for (var y = height - 2; y >= 0; y--)
        {
            for (var x = width - 2; x > 0; x--)
            {
                var i = (y * width) + x;
                distance[i] = Math.Min(distance[i], Math.Min(Math.Min(distance[i + 1] + 3, distance[i + width] + 3), Math.Min(distance[i + width + 1] + 4, distance[i + width - 1] + 4)));
            }
        }

        var anchors = new int[map.Segments.Count];
        var best = new int[map.Segments.Count];
        var areas = new int[map.Segments.Count];
        for (var i = 0; i < pixels.Length; i++)
        {
            var segment = pixels[i];
            if (segment < 0)
            {
                continue;
            }

            areas[segment]++;
            if (distance[i] > best[segment])
            {
                best[segment] = distance[i];
                anchors[segment] = i;
            }
        }

        return (anchors, areas);
    }

    private static byte Mix(double under, byte over, double alpha) => (byte)Math.Round((under * (1 - alpha)) + (over * alpha));

    private static void Fill(Image<Rgb24> image, int left, int top, int width, int height, Rgb24 colour)
    {
        image.ProcessPixelRows(rows =>
        {
            for (var y = Math.Max(0, top); y < Math.Min(rows.Height, top + height); y++)
            {
                var start = Math.Max(0, left);
                var end = Math.Min(rows.Width, left + width);
                if (end > start)
                {
                    rows.GetRowSpan(y)[start..end].Fill(colour);
                }
            }
        });
    }
}
