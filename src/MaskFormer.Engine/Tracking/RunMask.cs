using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tracking;

/// <summary>
/// A mask as runs of set pixels per row inside its box, so holding a track costs the object's boundary
/// and comparing two costs the rows they share, not the frame's area. Immutable once built.
/// </summary>
internal sealed class RunMask
{
    private static readonly int[] s_noRuns = [];

    // Row r of the box (y = Box.Y + r) owns _runs[_rowStarts[r] .. _rowStarts[r + 1]), as pairs of
    // absolute x: start inclusive, end exclusive.
    private readonly int[] _rowStarts;
    private readonly int[] _runs;

    private RunMask(PixelBox box, long area, int[] rowStarts, int[] runs)
    {
        Box = box;
        Area = area;
        _rowStarts = rowStarts;
        _runs = runs;
        for (var i = 0; i < runs.Length; i += 2)
        {
            PixelCount += runs[i + 1] - runs[i];
        }
    }

    public PixelBox Box { get; }

    /// <summary>The area the segment reports; IoU's union uses it, as the reference does.</summary>
    public long Area { get; }

    /// <summary>Number of runs (a measure of the mask's boundary).</summary>
    public int RunCount => _runs.Length / 2;

    /// <summary>Pixels actually set inside the box.</summary>
    public long PixelCount { get; }

    /// <summary>The non-zero pixels of <paramref name="mask"/> inside <paramref name="box"/>.</summary>
    public static RunMask FromBinary(BinaryMask mask, PixelBox box, long area)
    {
        // Read as an instance's runs are, so there is one scan of a binary mask's rows.
        using var runs = MaskRuns.FromBinary(mask, box);
        return FromRuns(runs, box, area);
    }

    /// <summary>The runs of <paramref name="runs"/> inside <paramref name="box"/> (all of them, for an instance's box).</summary>
    public static RunMask FromRuns(MaskRuns runs, PixelBox box, long area)
    {
        var builder = new Builder(box);
        for (var r = 0; r < box.Height; r++)
        {
            var row = runs.Row(box.Y + r);
            for (var i = 0; i < row.Length; i += 2)
            {
                var (start, end) = (Math.Max(row[i], box.X), Math.Min(row[i + 1], box.X + box.Width));
                if (end > start)
                {
                    builder.Add(start, end);
                }
            }

            builder.EndRow();
        }

        return builder.Build(area);
    }

    /// <summary>The pixels of <paramref name="segmentIds"/> equal to <paramref name="id"/> inside <paramref name="box"/>.</summary>
    public static RunMask FromSegment(LabelMap segmentIds, int id, PixelBox box, long area)
    {
        var value = (ushort)id;
        var builder = new Builder(box);
        for (var r = 0; r < box.Height; r++)
        {
            var row = segmentIds.Row(box.Y + r).Slice(box.X, box.Width);
            var x = 0;
            while (x < row.Length)
            {
                var start = row[x..].IndexOf(value);
                if (start < 0)
                {
                    break;
                }

                start += x;
                var length = row[start..].IndexOfAnyExcept(value);
                var end = length < 0 ? row.Length : start + length;
                builder.Add(box.X + start, box.X + end);
                x = end;
            }

            builder.EndRow();
        }

        return builder.Build(area);
    }

    /// <summary>
    /// The largest IoU the two masks could have, from their areas and the overlap of their boxes alone.
    /// Computed with the same arithmetic as <see cref="IoU(RunMask)"/>, which grows with the intersection, so
    /// IoU(other) never exceeds it.
    /// </summary>
    public double IoUUpperBound(RunMask other)
    {
        var most = Math.Min(BoxOverlap(other, out _, out _, out _, out _), Math.Min(PixelCount, other.PixelCount));

        // Only an area smaller than the mask's own pixels can make the union vanish; prune nothing then.
        return Area + other.Area - most > 0 ? Ratio(most, Area, other.Area) : double.PositiveInfinity;
    }

    /// <summary>Intersection over union with <paramref name="other"/>: pixels set in both, inside both boxes.</summary>
    public double IoU(RunMask other) => Ratio(Intersection(other), Area, other.Area);

    /// <summary>Pixels set in both masks.</summary>
    public long Intersection(RunMask other)
    {
        if (BoxOverlap(other, out _, out var top, out _, out var bottom) == 0)
        {
            return 0;
        }

        long intersection = 0;
        for (var y = top; y < bottom; y++)
        {
            var a = _rowStarts[y - Box.Y] * 2;
            var aEnd = _rowStarts[y - Box.Y + 1] * 2;
            var b = other._rowStarts[y - other.Box.Y] * 2;
            var bEnd = other._rowStarts[y - other.Box.Y + 1] * 2;
            while (a < aEnd && b < bEnd)
            {
                var start = Math.Max(_runs[a], other._runs[b]);
                var end = Math.Min(_runs[a + 1], other._runs[b + 1]);
                if (end > start)
                {
                    intersection += end - start;
                }

                if (_runs[a + 1] < other._runs[b + 1])
                {
                    a += 2;
                }
                else
                {
                    b += 2;
                }
            }
        }

        return intersection;
    }

    /// <summary>Intersection over union with <paramref name="other"/>, read from its bits: the same value as <see cref="IoU(RunMask)"/> with the mask they were made from.</summary>
    public double IoU(RunMask other, MaskBits otherBits) => Ratio(Intersection(otherBits), Area, other.Area);

    /// <summary>Intersection over union of two unpacked masks: the same value as <see cref="IoU(RunMask)"/> with the masks they were made from.</summary>
    public double IoU(MaskBits bits, RunMask other, MaskBits otherBits) => Ratio(bits.Intersection(otherBits), Area, other.Area);

    /// <summary>Pixels set in both this mask and <paramref name="other"/>: each of this mask's runs inside the other's box counted in its bits.</summary>
    public long Intersection(MaskBits other)
    {
        var box = other.Box;
        var (left, right) = (Math.Max(Box.X, box.X), Math.Min(Box.X + Box.Width, box.X + box.Width));
        var (top, bottom) = (Math.Max(Box.Y, box.Y), Math.Min(Box.Y + Box.Height, box.Y + box.Height));
        long intersection = 0;
        for (var y = top; y < bottom && left < right; y++)
        {
            var end = _rowStarts[y - Box.Y + 1] * 2;
            for (var a = _rowStarts[y - Box.Y] * 2; a < end; a += 2)
            {
                var (start, stop) = (Math.Max(_runs[a], left), Math.Min(_runs[a + 1], right));
                if (stop > start)
                {
                    intersection += other.Count(y, start, stop);
                }
            }
        }

        return intersection;
    }

    /// <summary>
    /// This mask carried from a frame of <paramref name="fromWidth"/> x <paramref name="fromHeight"/> to one of
    /// <paramref name="toWidth"/> x <paramref name="toHeight"/>, nearest neighbour at pixel centres: new pixel
    /// (x, y) is old pixel (⌊(2x + 1)·fromWidth / 2·toWidth⌋, likewise for y). Costs the new box's rows and the runs.
    /// </summary>
    public RunMask Resized(int fromWidth, int fromHeight, int toWidth, int toHeight)
    {
        var (top, bottom) = (FirstCovering(Box.Y, fromHeight, toHeight), FirstCovering(Box.Y + Box.Height, fromHeight, toHeight));
        var (left, right) = (FirstCovering(Box.X, fromWidth, toWidth), FirstCovering(Box.X + Box.Width, fromWidth, toWidth));
        var builder = new Builder(new PixelBox(left, top, right - left, bottom - top));
        long pixels = 0;
        for (var y = top; y < bottom; y++)
        {
            var runs = RowRuns((int)((((2L * y) + 1) * fromHeight) / (2L * toHeight)));
            for (var i = 0; i < runs.Length; i += 2)
            {
                var (start, end) = (FirstCovering(runs[i], fromWidth, toWidth), FirstCovering(runs[i + 1], fromWidth, toWidth));
                if (end > start)
                {
                    builder.Add(start, end);
                    pixels += end - start;
                }
            }

            builder.EndRow();
        }

        return builder.Build(pixels);
    }

    // The first new coordinate whose old one is at or after `at`: the least x with ⌊(2x + 1)·from / 2·to⌋ ≥ at,
    // that is x ≥ (2·at·to − from) / 2·from.
    private static int FirstCovering(int at, int from, int to)
    {
        var (numerator, denominator) = ((2L * at * to) - from, 2L * from);
        return numerator <= 0 ? 0 : (int)((numerator + denominator - 1) / denominator);
    }

    /// <summary>The runs of row <paramref name="y"/> (inside the box) as pairs of absolute x: start inclusive, end exclusive.</summary>
    internal ReadOnlySpan<int> RowRuns(int y) => _runs.AsSpan(_rowStarts[y - Box.Y] * 2, (_rowStarts[y - Box.Y + 1] - _rowStarts[y - Box.Y]) * 2);

    private static double Ratio(long intersection, long area, long otherArea)
    {
        var union = area + otherArea - intersection;
        return union > 0 ? intersection / (double)union : 0;
    }

    private long BoxOverlap(RunMask other, out int left, out int top, out int right, out int bottom)
    {
        left = Math.Max(Box.X, other.Box.X);
        top = Math.Max(Box.Y, other.Box.Y);
        right = Math.Min(Box.X + Box.Width, other.Box.X + other.Box.Width);
        bottom = Math.Min(Box.Y + Box.Height, other.Box.Y + other.Box.Height);
        return right > left && bottom > top ? (long)(right - left) * (bottom - top) : 0;
    }

    private struct Builder(PixelBox box)
    {
        private readonly int[] _rowStarts = new int[box.Height + 1];
        private List<int>? _runs;
        private int _row;

        public void Add(int start, int end)
        {
            _runs ??= new List<int>(box.Height * 4);
            _runs.Add(start);
            _runs.Add(end);
        }

        public void EndRow() => _rowStarts[++_row] = (_runs?.Count ?? 0) / 2;

        public readonly RunMask Build(long area) => new(box, area, _rowStarts, _runs is null ? s_noRuns : [.. _runs]);
    }
}
