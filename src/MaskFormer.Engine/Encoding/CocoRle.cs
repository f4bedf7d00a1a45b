using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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
    /// outside which every pixel is 0 (as an instance's box is). Costs the box's area, read once into row
    /// runs (vectorised), and the mask's boundary, not a column-major walk of the image.
    /// </summary>
    public static uint[] Encode(BinaryMask mask, PixelBox box)
    {
        using var runs = MaskRuns.FromBinary(mask, box);
        return Encode(runs, box);
    }

    /// <summary>
    /// The run lengths of an instance's mask in column-major order: from its row runs where instance
    /// inference produced them (costs the mask's boundary), else from its pixels inside its box.
    /// </summary>
    public static uint[] Encode(InstanceMask instance) => Encode(instance.Runs, instance.Box);

    /// <summary>
    /// The run lengths of <paramref name="runs"/> in column-major order; every run lies in <paramref name="box"/>.
    /// Costs the runs, the mask's boundary (one step per flip), and a scan of a bit per box pixel.
    /// </summary>
    internal static uint[] Encode(MaskRuns runs, PixelBox box)
    {
        var height = runs.Height;
        if (box.Width <= 0 || box.Height <= 0)
        {
            return [(uint)(runs.Width * height)];
        }

        // A row's pixel x is set where an odd number of its runs' ends (starts and ends alike) lie at or
        // before x. So a column flips between a row and the row above (what column-major runs count)
        // where the ends of the two rows at or before it are odd in number. Each end is marked as a bit
        // in its row and in the row below, in words of 64 rows a column (band b of column x holds rows
        // box.Y + 64 b + 0..63); a running XOR along each band turns the marks into flips (MarkFlips),
        // read back column by column (ReadColumns). No row is compared with another and nothing is sorted:
        // two XORs per end, a scan of the words, one step per flip. One more row than the box: a set pixel
        // on its last row flips back below it.
        var (bands, stride) = ((box.Height + 1 + 63) >> 6, box.Width + 1);
        var groups = (bands + 63) >> 6;
        var words = EngineArrayPool<ulong>.Shared.Rent(bands * stride);
        var occupied = EngineArrayPool<ulong>.Shared.Rent(groups * box.Width);
        uint[]? counts = null;
        try
        {
            var ends = words.AsSpan(0, bands * stride);
            var occupiedBands = occupied.AsSpan(0, groups * box.Width);
            ends.Clear();
            occupiedBands.Clear();
            MarkEnds(runs, box, ends, stride);
            var flips = MarkFlips(ends, bands, stride, box.Width, occupiedBands, groups);

            // Each flip adds at most one count, and the end one more.
            counts = EngineArrayPool<uint>.Shared.Rent((int)flips + 1);
            var n = ReadColumns(ends, stride, occupiedBands, groups, box, runs.Width, height, counts);
            return counts.AsSpan(0, n).ToArray();
        }
        finally
        {
            EngineArrayPool<ulong>.Shared.Return(words);
            EngineArrayPool<ulong>.Shared.Return(occupied);
            if (counts is not null)
            {
                EngineArrayPool<uint>.Shared.Return(counts);
            }
        }
    }

    // Marks each run end of the box's rows as a bit in its row and in the row below (see Encode). An end at
    // the box's right edge lands in the spare column, which no pixel reads; a run outside the box throws.
    private static void MarkEnds(MaskRuns runs, PixelBox box, Span<ulong> ends, int stride)
    {
        for (var r = 0; r < box.Height; r++)
        {
            var band = ends.Slice((r >> 6) * stride, stride);
            var bandBelow = ends.Slice(((r + 1) >> 6) * stride, stride);
            var (bit, bitBelow) = (1UL << (r & 63), 1UL << ((r + 1) & 63));
            foreach (var end in runs.Row(box.Y + r))
            {
                band[end - box.X] ^= bit;
                bandBelow[end - box.X] ^= bitBelow;
            }
        }
    }

    // Band by band, turns the marks (see Encode) into flips: the parity of a column's marks and the
    // columns' before it, a running XOR along the band. Sets bit b of a column's occupied word (of 64
    // bands) where its band b holds flips, so that the column-major read skips the empty words. Returns
    // the number of flips.
    private static long MarkFlips(Span<ulong> bits, int bands, int stride, int width, Span<ulong> occupied, int groups)
    {
        var flips = 0L;
        ref var occupiedFirst = ref MemoryMarshal.GetReference(occupied);
        for (var band = 0; band < bands; band++)
        {
            var row = bits.Slice(band * stride, width);
            ref var occupiedColumn = ref Unsafe.Add(ref occupiedFirst, band >> 6);
            var (parity, bit) = (0UL, band & 63);
            for (var x = 0; x < row.Length; x++)
            {
                if (parity == 0)
                {
                    // Between a band's flips the words stay 0: skipped at the speed of a scan.
                    var next = row[x..].IndexOfAnyExcept(0UL);
                    if (next < 0)
                    {
                        break;
                    }

                    x += next;
                }

                parity ^= row[x];
                row[x] = parity;
                flips += BitOperations.PopCount(parity);
                Unsafe.Add(ref occupiedColumn, x * groups) |= (parity != 0 ? 1UL : 0UL) << bit;
            }
        }

        return flips;
    }

    // Column-major run lengths from each box column's flips (see MarkFlips), into `counts`; returns how many.
    private static int ReadColumns(ReadOnlySpan<ulong> flips, int stride, ReadOnlySpan<ulong> occupied, int groups, PixelBox box, int width, int height, Span<uint> counts)
    {
        var n = 0;
        var run = (long)box.X * height;
        for (var x = 0; x < box.Width; x++)
        {
            var position = 0;
            for (var group = 0; group < groups; group++)
            {
                for (var nonEmpty = occupied[(x * groups) + group]; nonEmpty != 0; nonEmpty &= nonEmpty - 1)
                {
                    var band = (group << 6) + BitOperations.TrailingZeroCount(nonEmpty);
                    var top = box.Y + (band << 6);
                    for (var word = flips[(band * stride) + x]; word != 0; word &= word - 1)
                    {
                        var y = top + BitOperations.TrailingZeroCount(word);
                        run += y - position;
                        position = y;
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
                }
            }

            run += height - position;
        }

        run += (long)(width - box.X - box.Width) * height;

        // A mask whose last pixel is set ends on its run of 1s, with no empty run of 0s after it.
        if (run > 0 || n == 0)
        {
            counts[n++] = (uint)run;
        }

        return n;
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
