using System.Buffers.Binary;

namespace MaskFormer.Engine.Decoding.Containers;

/// <summary>
/// TGA has no signature, so this runs once ImageSharp has recognised the file: an uncompressed image's
/// pixels must all be present (ImageSharp decodes missing ones as black). Run-length data cut short
/// already fails inside ImageSharp.
/// </summary>
internal static class TgaContainer
{
    public static void Inspect(ReadOnlySpan<byte> data)
    {
        if (data.Length < 18)
        {
            throw ContainerInspector.Truncated("TGA", "it ends inside its header");
        }

        if (data[2] is not (1 or 2 or 3))
        {
            return;
        }

        var colorMap = data[1] == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(data[5..]) * (long)((data[7] + 7) / 8) : 0;
        var pixels = (long)BinaryPrimitives.ReadUInt16LittleEndian(data[12..]) * BinaryPrimitives.ReadUInt16LittleEndian(data[14..]) * ((data[16] + 7) / 8);
        var needed = 18 + data[0] + colorMap + pixels;
        if (needed > data.Length)
        {
            throw ContainerInspector.Truncated("TGA", $"its pixels need {needed} bytes but there are {data.Length}");
        }
    }
}
