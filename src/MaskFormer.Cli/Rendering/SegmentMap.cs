using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Cli.Rendering;

/// <summary>One segment to draw: its colour and the text of its tag (empty for none).</summary>
internal sealed record DrawnSegment(Rgb24 Colour, string Label);

/// <summary>
/// What an overlay draws, whatever the task: each pixel's segment (an index into
/// <see cref="Segments"/>, or -1 for void, which is left as the image).
/// </summary>
internal sealed class SegmentMap
{
    public SegmentMap(int width, int height, int[] pixels, IReadOnlyList<DrawnSegment> segments)
    {
        if (pixels.Length != width * height)
        {
            throw new ArgumentException($"{pixels.Length} pixels for a {width}x{height} map.", nameof(pixels));
        }

        Width = width;
        Height = height;
        Pixels = pixels;
        Segments = segments;
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>Row-major segment index per pixel; -1 is void.</summary>
    public int[] Pixels { get; }

    public IReadOnlyList<DrawnSegment> Segments { get; }

    /// <summary>A map with no segments: the overlay is the image itself.</summary>
    public static SegmentMap Empty(int width, int height) => new(width, height, Enumerable.Repeat(-1, width * height).ToArray(), []);
}
