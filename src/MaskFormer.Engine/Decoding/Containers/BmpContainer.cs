using System.Buffers.Binary;

namespace MaskFormer.Engine.Decoding.Containers;

/// <summary>
/// BMP: the declared size within the limits (read here, because a huge declared size fails inside
/// ImageSharp's Identify) and, for uncompressed bitmaps, every row inside the data (ImageSharp decodes
/// missing rows as black).
/// </summary>
internal static class BmpContainer
{
    public static bool Matches(ReadOnlySpan<byte> data) => data.Length >= 2 && data[0] == 'B' && data[1] == 'M';

    public static void Inspect(ReadOnlySpan<byte> data, SizeLimits limits)
    {
        if (data.Length < 26)
        {
            throw ContainerInspector.Truncated("BMP", "it ends inside its headers");
        }

        var pixelsAt = BinaryPrimitives.ReadUInt32LittleEndian(data[10..]);
        var headerSize = BinaryPrimitives.ReadUInt32LittleEndian(data[14..]);
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
