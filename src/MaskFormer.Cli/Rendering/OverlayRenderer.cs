using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace MaskFormer.Cli.Rendering;

/// <summary>A class present in a label map, for the legend.</summary>
internal sealed record LegendEntry(int Id, string Name, double Fraction);

/// <summary>
/// Blends class colours over the image and appends a legend (swatch, name, share of the image).
/// Small images are enlarged by an integer factor first so a person can see the shapes.
/// </summary>
internal static class OverlayRenderer
{
    private const int MinimumDisplaySide = 320;
    private const int FontScale = 2;

    public static Image<Rgb24> Render(Image<Rgb24> image, ushort[] labels, IReadOnlyList<LegendEntry> legend, float alpha)
    {
        var factor = Math.Max(1, (int)Math.Ceiling(MinimumDisplaySide / (double)Math.Min(image.Width, image.Height)));
        using var blended = Blend(image, labels, alpha);
        if (factor > 1)
        {
            blended.Mutate(context => context.Resize(image.Width * factor, image.Height * factor, KnownResamplers.NearestNeighbor));
        }

        var lineHeight = (BitmapFont.GlyphHeight + 4) * FontScale;
        var texts = legend.Select(entry => $"{entry.Id} {entry.Name} {entry.Fraction * 100:F1}%").ToArray();
        var legendWidth = (lineHeight * 2) + texts.Select(t => BitmapFont.Measure(t, FontScale)).DefaultIfEmpty(0).Max();
        var height = Math.Max(blended.Height, (legend.Count + 1) * lineHeight);
        var canvas = new Image<Rgb24>(blended.Width + legendWidth, height, new Rgb24(255, 255, 255));
        canvas.Mutate(context => context.DrawImage(blended, new Point(0, 0), 1f));
        for (var i = 0; i < legend.Count; i++)
        {
            var top = (lineHeight / 2) + (i * lineHeight);
            var swatch = Palette.ForId(legend[i].Id);
            FillRectangle(canvas, blended.Width + (lineHeight / 2), top, lineHeight - 4, lineHeight - 4, swatch);
            BitmapFont.Draw(canvas, texts[i], blended.Width + (lineHeight * 3 / 2), top + FontScale, FontScale, new Rgb24(0, 0, 0));
        }

        return canvas;
    }

    /// <summary>The image with each pixel's id colour blended over it, at the image's own size.</summary>
    public static Image<Rgb24> Blend(Image<Rgb24> image, ushort[] labels, float alpha)
    {
        var blended = image.Clone();
        blended.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    var colour = Palette.ForId(labels[(y * row.Length) + x]);
                    ref var pixel = ref row[x];
                    pixel = new Rgb24(Mix(pixel.R, colour.R, alpha), Mix(pixel.G, colour.G, alpha), Mix(pixel.B, colour.B, alpha));
                }
            }
        });
        return blended;
    }

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

    private static byte Mix(byte under, byte over, float alpha) => (byte)Math.Round((under * (1 - alpha)) + (over * alpha));

    private static void FillRectangle(Image<Rgb24> image, int left, int top, int width, int height, Rgb24 colour)
    {
        image.ProcessPixelRows(rows =>
        {
            for (var y = Math.Max(0, top); y < Math.Min(rows.Height, top + height); y++)
            {
                rows.GetRowSpan(y).Slice(left, Math.Min(width, rows.Width - left)).Fill(colour);
            }
        });
    }
}
