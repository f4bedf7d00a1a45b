using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Encoding;

/// <summary>A rectangle of a map, in pixels.</summary>
public readonly record struct MapRectangle(int X, int Y, int Width, int Height);

/// <summary>
/// Finds where a map differs from the one before it, as a few non-overlapping rectangles: consecutive
/// changed rows (and rows up to <see cref="MergeGap"/> apart) form one band, cropped to the columns
/// that changed in it; each rectangle is sent as the per-sample difference from the old map. Lossless by
/// construction: every changed pixel lies in a rectangle, so adding the rectangles to the old map gives
/// the new one.
/// </summary>
public static class MapPatches
{
    /// <summary>
    /// Changed rows at most this many unchanged rows apart share a rectangle: each patch costs about
    /// 60 bytes of PNG headers, more than a few rows of zeros (unchanged pixels) deflate squeezes.
    /// </summary>
    public const int MergeGap = 8;

    /// <summary>The rectangles, top to bottom, covering every pixel where the two maps differ.</summary>
    public static List<MapRectangle> Changed(ReadOnlySpan<ushort> previous, ReadOnlySpan<ushort> current, int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(previous.Length, width * height);
        ArgumentOutOfRangeException.ThrowIfNotEqual(current.Length, width * height);
        var rectangles = new List<MapRectangle>();
        int top = -1, bottom = -1, left = width, right = -1;
        for (var y = 0; y < height; y++)
        {
            var before = previous.Slice(y * width, width);
            var after = current.Slice(y * width, width);
            var first = before.CommonPrefixLength(after);
            if (first == width)
            {
                continue;
            }

            var last = width - 1;
            while (before[last] == after[last])
            {
                last--;
            }

            if (top >= 0 && y - bottom - 1 > MergeGap)
            {
                rectangles.Add(new MapRectangle(left, top, right - left + 1, bottom - top + 1));
                (top, left, right) = (-1, width, -1);
            }

            top = top < 0 ? y : top;
            bottom = y;
            left = Math.Min(left, first);
            right = Math.Max(right, last);
        }

        if (top >= 0)
        {
            rectangles.Add(new MapRectangle(left, top, right - left + 1, bottom - top + 1));
        }

        return rectangles;
    }

    /// <summary>
    /// One rectangle's change, as the samples to add to the previous map's: each pixel's
    /// (new − old) per sample modulo 2^<paramref name="sampleBits"/> (8: per byte, as a COCO RGB id or an
    /// 8-bit label is stored; 16: per 16-bit label). Unchanged pixels are 0, so the rectangle compresses
    /// to little more than its changed pixels. Dispose the map.
    /// </summary>
    public static LabelMap Change(ReadOnlySpan<ushort> previous, ReadOnlySpan<ushort> current, int width, MapRectangle rectangle, int sampleBits)
    {
        var change = new LabelMap(rectangle.Width, rectangle.Height);
        for (var y = 0; y < rectangle.Height; y++)
        {
            var start = ((rectangle.Y + y) * width) + rectangle.X;
            var before = previous.Slice(start, rectangle.Width);
            var after = current.Slice(start, rectangle.Width);
            var row = change.Row(y);
            for (var x = 0; x < row.Length; x++)
            {
                row[x] = sampleBits == 16
                    ? (ushort)(after[x] - before[x])
                    : (ushort)(((after[x] - before[x]) & 0xFF) | ((((after[x] >> 8) - (before[x] >> 8)) & 0xFF) << 8));
            }
        }

        return change;
    }

    /// <summary>
    /// A change map (<see cref="Change"/>) as PNG: grey of <paramref name="bitsPerPixel"/> bits, or COCO
    /// RGB for 24. Rows unfiltered: mostly zeros already, which the Up filter would only double.
    /// </summary>
    public static byte[] EncodeChangePng(LabelMap change, int bitsPerPixel) => LabelPngWriter.Write(change, bitsPerPixel, PngRowFilter.None);
}
