using System.Buffers.Binary;

namespace MaskFormer.Engine.Decoding.Containers;

/// <summary>
/// TGA has no signature, so this runs once ImageSharp has recognised the file: an uncompressed image's
/// pixels must all be present (ImageSharp decodes missing ones as black), and a run-length image's
/// packets must cover every pixel. ImageSharp 2.1 takes the end of the data for a run of 128 pixels, over
/// and over, so an 18-byte header declaring 8192x4882 decoded a whole image in 2.3-3.4 s.
/// </summary>
internal static class TgaContainer
{
    public static void Inspect(ReadOnlySpan<byte> data)
    {
        if (data.Length < 18)
        {
            throw ContainerInspector.Truncated("TGA", "it ends inside its header");
        }

        if (data[2] is not (1 or 2 or 3 or 9 or 10 or 11))
        {
            return;
        }

        var colorMap = data[1] == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(data[5..]) * (long)((data[7] + 7) / 8) : 0;
        var pixelCount = (long)BinaryPrimitives.ReadUInt16LittleEndian(data[12..]) * BinaryPrimitives.ReadUInt16LittleEndian(data[14..]);
        var bytesPerPixel = (data[16] + 7) / 8;
        var pixelsAt = 18 + data[0] + colorMap;
        if (data[2] <= 3)
        {
            var needed = pixelsAt + (pixelCount * bytesPerPixel);
            if (needed > data.Length)
            {
                throw ContainerInspector.Truncated("TGA", $"its pixels need {needed} bytes but there are {data.Length}");
            }

            return;
        }

        // Run-length packets: a header byte, then one pixel for a run or n pixels raw; n is its low 7 bits + 1.
        var at = pixelsAt;
        for (var covered = 0L; covered < pixelCount;)
        {
            if (at >= data.Length)
            {
                throw ContainerInspector.Truncated("TGA", $"its run-length packets cover {covered} of its {pixelCount} pixels");
            }

            var header = data[(int)at];
            var count = (header & 0x7F) + 1;
            at += 1 + ((header & 0x80) != 0 ? bytesPerPixel : (long)count * bytesPerPixel);
            covered += count;
        }

        if (at > data.Length)
        {
            throw ContainerInspector.Truncated("TGA", "its last run-length packet runs past the end of the data");
        }
    }
}
