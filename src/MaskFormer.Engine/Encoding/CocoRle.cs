using System.Buffers;
using System.Numerics;
using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Encoding;

/// <summary>
/// COCO run-length encoding, as pycocotools' maskApi.c: runs over the pixels in column-major order,
/// alternating 0s and 1s and starting with a (possibly empty) run of 0s; and its compressed string
/// form (LEB128-like 5-bit groups offset by 48, each count after the second stored as the difference
/// from the count two before).
/// </summary>
public static class CocoRle
{
    /// <summary>The run lengths of <paramref name="mask"/> in column-major order.</summary>
    public static uint[] Encode(BinaryMask mask) => Encode(mask, new PixelBox(0, 0, mask.Width, mask.Height));

    /// <summary>
    /// The run lengths of <paramref name="mask"/> in column-major order, given a <paramref name="box"/>
    /// outside which every pixel is 0 (as an instance's box is). Costs the box's area, read row by row
    /// (vectorised where rows agree), and the mask's boundary, not a column-major walk of the image.
    /// </summary>
    public static uint[] Encode(BinaryMask mask, PixelBox box)
    {
        var height = mask.Height;
        if (box.Width <= 0 || box.Height <= 0)
        {
            return [(uint)(mask.Width * height)];
        }

        // Where each column of the box flips between 0 and 1, found row by row against the row above
        // (zeros above the box): (column, row) pairs in row order, so each column's flips come out sorted
        // once grouped by column.
        var flips = new List<(int Column, int Row)>();
        var zeros = EngineArrayPool<byte>.Shared.Rent(box.Width);
        try
        {
            ReadOnlySpan<byte> above = zeros.AsSpan(0, box.Width);
            zeros.AsSpan(0, box.Width).Clear();
            for (var y = box.Y; y < box.Y + box.Height; y++)
            {
                ReadOnlySpan<byte> row = mask.Row(y).Slice(box.X, box.Width);
                for (var x = 0; x < row.Length;)
                {
                    x += row[x..].CommonPrefixLength(above[x..]);
                    if (x >= row.Length)
                    {
                        break;
                    }

                    if ((row[x] != 0) != (above[x] != 0))
                    {
                        flips.Add((x, y));
                    }

                    x++;
                }

                above = row;
            }

            // Below the box every pixel is 0: a set pixel on its last row flips there.
            for (var x = Next(above, 0); x >= 0; x = Next(above, x + 1))
            {
                flips.Add((x, box.Y + box.Height));
            }
        }
        finally
        {
            EngineArrayPool<byte>.Shared.Return(zeros);
        }

        var starts = EngineArrayPool<int>.Shared.Rent(box.Width + 1);
        var rows = EngineArrayPool<int>.Shared.Rent(Math.Max(1, flips.Count));
        try
        {
            starts.AsSpan(0, box.Width + 1).Clear();
            foreach (var (column, _) in flips)
            {
                starts[column + 1]++;
            }

            for (var x = 0; x < box.Width; x++)
            {
                starts[x + 1] += starts[x];
            }

            foreach (var (column, row) in flips)
            {
                rows[starts[column]++] = row;
            }

            // Filling moved each column's start to the next one's.
            for (var x = box.Width; x > 0; x--)
            {
                starts[x] = starts[x - 1];
            }

            starts[0] = 0;
            return Emit(starts, rows, box, mask.Width, height);
        }
        finally
        {
            EngineArrayPool<int>.Shared.Return(starts);
            EngineArrayPool<int>.Shared.Return(rows);
        }
    }

    /// <summary>
    /// The run lengths of an instance's mask in column-major order: from its row runs where instance
    /// inference produced them (costs the mask's boundary), else from its pixels inside its box.
    /// </summary>
    public static uint[] Encode(InstanceMask instance) => Encode(instance.Runs, instance.Box);

    /// <summary>
    /// The run lengths of <paramref name="runs"/> in column-major order; every run lies in <paramref name="box"/>.
    /// Costs the runs and the mask's boundary: where a row's runs differ from the row above's, those
    /// columns flip.
    /// </summary>
    internal static uint[] Encode(MaskRuns runs, PixelBox box)
    {
        var height = runs.Height;
        if (box.Width <= 0 || box.Height <= 0)
        {
            return [(uint)(runs.Width * height)];
        }

        // Each row's difference from the row above (zeros above and below the box) as column ranges
        // (start, end, row), in row order; a difference array counts each column's flips.
        var ranges = EngineArrayPool<int>.Shared.Rent(Math.Max(16, 3 * (runs.RunCount + box.Height)));
        var starts = EngineArrayPool<int>.Shared.Rent(box.Width + 1);
        int[]? rows = null;
        try
        {
            var count = 0;
            ReadOnlySpan<int> above = [];
            for (var y = box.Y; y <= box.Y + box.Height; y++)
            {
                var row = y < box.Y + box.Height ? runs.Row(y) : [];
                count = Difference(above, row, y, box.X, ref ranges, count);
                above = row;
            }

            var column = starts.AsSpan(0, box.Width + 1);
            column.Clear();
            for (var r = 0; r < count; r += 3)
            {
                column[ranges[r]]++;
                column[ranges[r + 1]]--;
            }

            // Flips per column (the ranges covering it), then where each column's flips start.
            var (covering, flips) = (0, 0);
            for (var x = 0; x < box.Width; x++)
            {
                covering += column[x];
                column[x] = flips;
                flips += covering;
            }

            column[box.Width] = flips;
            rows = EngineArrayPool<int>.Shared.Rent(Math.Max(1, flips));
            var fill = EngineArrayPool<int>.Shared.Rent(box.Width);
            try
            {
                column[..box.Width].CopyTo(fill);
                for (var r = 0; r < count; r += 3)
                {
                    for (var x = ranges[r]; x < ranges[r + 1]; x++)
                    {
                        rows[fill[x]++] = ranges[r + 2];
                    }
                }
            }
            finally
            {
                EngineArrayPool<int>.Shared.Return(fill);
            }

            return Emit(starts, rows, box, runs.Width, height);
        }
        finally
        {
            EngineArrayPool<int>.Shared.Return(ranges);
            EngineArrayPool<int>.Shared.Return(starts);
            if (rows is not null)
            {
                EngineArrayPool<int>.Shared.Return(rows);
            }
        }
    }

    // Appends the column ranges (relative to x0) where `above` and `row` (sorted, disjoint runs as
    // start/end pairs) differ: a walk over both lists' ends in order, each end toggling one side.
    private static int Difference(ReadOnlySpan<int> above, ReadOnlySpan<int> row, int y, int x0, ref int[] ranges, int count)
    {
        var (a, b, inside, start) = (0, 0, false, 0);
        while (a < above.Length || b < row.Length)
        {
            int at;
            if (b >= row.Length || (a < above.Length && above[a] < row[b]))
            {
                at = above[a++];
            }
            else if (a >= above.Length || row[b] < above[a])
            {
                at = row[b++];
            }
            else
            {
                // Both sides change here: the difference does not.
                (a, b) = (a + 1, b + 1);
                continue;
            }

            inside = !inside;
            if (inside)
            {
                start = at;
                continue;
            }

            if (count + 3 > ranges.Length)
            {
                var larger = EngineArrayPool<int>.Shared.Rent(2 * ranges.Length);
                ranges.AsSpan(0, count).CopyTo(larger);
                EngineArrayPool<int>.Shared.Return(ranges);
                ranges = larger;
            }

            (ranges[count], ranges[count + 1], ranges[count + 2]) = (start - x0, at - x0, y);
            count += 3;
        }

        return count;
    }

    // Column-major run lengths from each box column's flip rows (column x's at rows[starts[x] .. starts[x + 1]), ascending).
    private static uint[] Emit(int[] starts, int[] rows, PixelBox box, int width, int height)
    {
        // Each flip adds at most one count, and the end one more.
        var counts = EngineArrayPool<uint>.Shared.Rent(starts[box.Width] + 2);
        try
        {
            var n = 0;
            var run = (long)box.X * height;
            for (var x = 0; x < box.Width; x++)
            {
                var position = 0;
                for (var i = starts[x]; i < starts[x + 1]; i++)
                {
                    run += rows[i] - position;
                    position = rows[i];
                    if (run == 0 && n > 0)
                    {
                        // A flip below one column's last row and one at the next column's first row are the
                        // same place in column-major order: they cancel, and the run before goes on.
                        run = counts[--n];
                        continue;
                    }

                    counts[n++] = (uint)run;
                    run = 0;
                }

                run += height - position;
            }

            run += (long)(width - box.X - box.Width) * height;

            // A mask whose last pixel is set ends on its run of 1s, with no empty run of 0s after it.
            if (run > 0 || n == 0)
            {
                counts[n++] = (uint)run;
            }

            return counts.AsSpan(0, n).ToArray();
        }
        finally
        {
            EngineArrayPool<uint>.Shared.Return(counts);
        }
    }

    private static int Next(ReadOnlySpan<byte> row, int from)
    {
        if (from >= row.Length)
        {
            return -1;
        }

        var next = row[from..].IndexOfAnyExcept((byte)0);
        return next < 0 ? -1 : from + next;
    }

    /// <summary>pycocotools' rleToString.</summary>
    public static string Compress(ReadOnlySpan<uint> counts)
    {
        // A count, or its difference from the count two before, is within ±2^32: at most seven
        // five-bit groups, one character each.
        var text = EngineArrayPool<char>.Shared.Rent(Math.Max(1, 7 * counts.Length));
        try
        {
            var n = 0;
            for (var i = 0; i < counts.Length; i++)
            {
                long x = counts[i];
                if (i > 2)
                {
                    x -= counts[i - 2];
                }

                // The fewest five-bit groups that hold x as a signed number (the last group's 0x10 is
                // the sign): what maskApi.c's loop stops at, counted up front instead of tested per group.
                var magnitude = (ulong)(x ^ (x >> 63));
                var groups = (64 - BitOperations.LeadingZeroCount(magnitude) + 1 + 4) / 5;
                for (var g = 1; g < groups; g++)
                {
                    text[n++] = (char)(48 + 0x20 + (x & 0x1f));
                    x >>= 5;
                }

                text[n++] = (char)(48 + (x & 0x1f));
            }

            return new string(text, 0, n);
        }
        finally
        {
            EngineArrayPool<char>.Shared.Return(text);
        }
    }

    /// <summary>pycocotools' rleFrString.</summary>
    /// <exception cref="FormatException">The string is not a valid compressed RLE.</exception>
    public static uint[] Decompress(string compressed)
    {
        var counts = new List<uint>();
        var p = 0;
        while (p < compressed.Length)
        {
            long x = 0;
            var k = 0;
            var more = true;
            while (more)
            {
                if (p >= compressed.Length || compressed[p] < 48 || compressed[p] > 48 + 63)
                {
                    throw new FormatException($"Invalid compressed RLE at character {p}.");
                }

                long c = compressed[p] - 48;
                x |= (c & 0x1f) << (5 * k);
                more = (c & 0x20) != 0;
                p++;
                k++;
                if (!more && (c & 0x10) != 0)
                {
                    x |= -1L << (5 * k);
                }
            }

            if (counts.Count > 2)
            {
                x += counts[^2];
            }

            counts.Add((uint)x);
        }

        return [.. counts];
    }

    /// <summary>Rebuilds a mask from run lengths.</summary>
    public static BinaryMask Decode(ReadOnlySpan<uint> counts, int height, int width)
    {
        var mask = new BinaryMask(width, height);
        var pixels = mask.Pixels;
        long index = 0;
        for (var i = 0; i < counts.Length; i++)
        {
            if (i % 2 == 1)
            {
                for (var j = 0L; j < counts[i]; j++)
                {
                    var at = index + j;
                    pixels[(int)((at % height * width) + (at / height))] = 1;
                }
            }

            index += counts[i];
        }

        return index == (long)height * width
            ? mask
            : throw new FormatException($"The runs cover {index} pixels; a {height}x{width} mask has {height * width}.");
    }
}
