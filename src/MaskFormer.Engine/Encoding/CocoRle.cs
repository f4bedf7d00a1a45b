using System.Text;
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
    public static uint[] Encode(BinaryMask mask)
    {
        var counts = new List<uint>();
        var pixels = mask.Pixels;
        byte current = 0;
        uint run = 0;
        for (var x = 0; x < mask.Width; x++)
        {
            for (var y = 0; y < mask.Height; y++)
            {
                var value = pixels[(y * mask.Width) + x] != 0 ? (byte)1 : (byte)0;
                if (value != current)
                {
                    counts.Add(run);
                    run = 0;
                    current = value;
                }

                run++;
            }
        }

        counts.Add(run);
        return [.. counts];
    }

    /// <summary>pycocotools' rleToString.</summary>
    public static string Compress(ReadOnlySpan<uint> counts)
    {
        var builder = new StringBuilder(counts.Length * 2);
        for (var i = 0; i < counts.Length; i++)
        {
            long x = counts[i];
            if (i > 2)
            {
                x -= counts[i - 2];
            }

            var more = true;
            while (more)
            {
                var c = (char)(x & 0x1f);
                x >>= 5;
                more = (c & 0x10) != 0 ? x != -1 : x != 0;
                if (more)
                {
                    c |= (char)0x20;
                }

                builder.Append((char)(c + 48));
            }
        }

        return builder.ToString();
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
