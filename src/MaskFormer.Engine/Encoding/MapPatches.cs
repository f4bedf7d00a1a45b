using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Encoding;

/// <summary>A rectangle of a map, in pixels.</summary>
public readonly record struct MapRectangle(int X, int Y, int Width, int Height);

/// <summary>
/// Finds where a map differs from the one before it, as a few non-overlapping rectangles: consecutive
/// changed rows (and rows up to <see cref="MergeGap"/> apart) form one band, cropped to the columns
/// that changed in it. Lossless by construction: every changed pixel lies in a rectangle, so copying
/// the rectangles over the old map gives the new one.
/// </summary>
public static class MapPatches
{
    /// <summary>
    /// Changed rows at most this many unchanged rows apart share a rectangle: each patch costs about
    /// 60 bytes of PNG headers, more than a few unchanged rows that the PNG's Up filter turns to zeros.
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

    /// <summary>A copy of one rectangle of <paramref name="map"/>, as a map of its own (dispose it).</summary>
    public static LabelMap Crop(ReadOnlySpan<ushort> map, int width, MapRectangle rectangle)
    {
        var crop = new LabelMap(rectangle.Width, rectangle.Height);
        for (var y = 0; y < rectangle.Height; y++)
        {
            map.Slice(((rectangle.Y + y) * width) + rectangle.X, rectangle.Width).CopyTo(crop.Row(y));
        }

        return crop;
    }
}
