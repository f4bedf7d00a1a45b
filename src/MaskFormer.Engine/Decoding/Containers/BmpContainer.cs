using System.Buffers.Binary;

namespace MaskFormer.Engine.Decoding.Containers;

/// <summary>
/// BMP: the declared size within the limits (read here, because a huge declared size fails inside
/// ImageSharp's Identify), a palette of at most 256 colours inside the data, and, for uncompressed
/// bitmaps, every row inside the data (ImageSharp decodes missing rows as black). OS/2 bitmap arrays
/// ("BA") are refused.
/// </summary>
/// <remarks>
/// ImageSharp 2.1 allocates the palette the header's colour count declares before it looks for the
/// pixels: a 58-byte file declaring 500 million colours took 2 GB of managed memory in Identify, and an
/// OutOfMemoryException under a container's heap limit.
/// </remarks>
internal static class BmpContainer
{
    public const int MaxColours = 256;

    public static bool Matches(ReadOnlySpan<byte> data) => data.Length >= 2 && data[0] == 'B' && data[1] is (byte)'M' or (byte)'A';

    public static void Inspect(ReadOnlySpan<byte> data, SizeLimits limits)
    {
        if (data[1] == 'A')
        {
            throw SegmentationException.Invalid(ContainerInspector.Field, "OS/2 bitmap arrays (BMP files starting \"BA\") are not accepted; send the bitmap itself.");
        }

        if (data.Length < 26)
        {
            throw ContainerInspector.Truncated("BMP", "it ends inside its headers");
        }

        var pixelsAt = BinaryPrimitives.ReadUInt32LittleEndian(data[10..]);
        var headerSize = BinaryPrimitives.ReadUInt32LittleEndian(data[14..]);

        // ImageSharp may size the palette by the gap up to the pixels (headers without a colour count): an
        // offset past the data asked for a 2 GB array (the fuzzer's; OutOfMemoryException).
        if (pixelsAt > data.Length)
        {
            throw ContainerInspector.Truncated("BMP", $"its pixels start at byte {pixelsAt}, past the end of the data ({data.Length} bytes)");
        }

        long width, height, bitsPerPixel, compression;
        if (headerSize == 12)
        {
            (width, height) = (BinaryPrimitives.ReadInt16LittleEndian(data[18..]), BinaryPrimitives.ReadInt16LittleEndian(data[20..]));
            (bitsPerPixel, compression) = (BinaryPrimitives.ReadUInt16LittleEndian(data[24..]), 0);
        }
        else if (data.Length >= 34)
        {
            (width, height) = (BinaryPrimitives.ReadInt32LittleEndian(data[18..]), BinaryPrimitives.ReadInt32LittleEndian(data[22..]));
            (bitsPerPixel, compression) = (BinaryPrimitives.ReadUInt16LittleEndian(data[28..]), BinaryPrimitives.ReadUInt32LittleEndian(data[30..]));
        }
        else
        {
            throw ContainerInspector.Truncated("BMP", "it ends inside its headers");
        }

        // A negative height means rows stored top-down.
        height = Math.Abs(height);
        limits.Check(width, height, ContainerInspector.Field);

        // The colours used (0: all that the bits per pixel allow, at most 256), after the info header.
        if (headerSize >= 40 && data.Length >= 50)
        {
            var colours = BinaryPrimitives.ReadUInt32LittleEndian(data[46..]);
            if (colours > MaxColours)
            {
                throw SegmentationException.Invalid(ContainerInspector.Field, $"The BMP image declares a palette of {colours} colours; at most {MaxColours} are accepted.");
            }

            if (14L + headerSize + (4L * colours) > data.Length)
            {
                throw ContainerInspector.Truncated("BMP", $"its palette of {colours} colours runs past the end of the data");
            }
        }

        // BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS: rows padded to 4 bytes; the last row's padding may be missing.
        if (compression is 0 or 3 or 6 && bitsPerPixel is > 0 and <= 32)
        {
            var row = ((bitsPerPixel * width) + 31) / 32 * 4;
            var needed = pixelsAt + (row * (height - 1)) + (((bitsPerPixel * width) + 7) / 8);
            if (needed > data.Length)
            {
                throw ContainerInspector.Truncated("BMP", $"{width}x{height} at {bitsPerPixel} bits per pixel needs {needed} bytes but there are {data.Length}");
            }
        }
    }
}
