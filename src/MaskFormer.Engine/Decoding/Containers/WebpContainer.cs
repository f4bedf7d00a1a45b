using System.Buffers.Binary;

namespace MaskFormer.Engine.Decoding.Containers;

/// <summary>
/// WebP: the RIFF size within the data and every chunk inside it (ImageSharp decodes a lossy WebP cut
/// short as black rows), every animation frame (ANMF) within the limits, orientation from EXIF.
/// </summary>
internal static class WebpContainer
{
    public static bool Matches(ReadOnlySpan<byte> data) => data.Length >= 12 && data.StartsWith("RIFF"u8) && data.Slice(8, 4).SequenceEqual("WEBP"u8);

    public static ExifOrientation Inspect(ReadOnlySpan<byte> data, SizeLimits limits)
    {
        var riffEnd = 8L + BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
        if (riffEnd > data.Length)
        {
            throw ContainerInspector.Truncated("WebP", $"the RIFF header declares {riffEnd} bytes but there are {data.Length}");
        }

        var orientation = ExifOrientation.TopLeft;
        var sawImage = false;
        var frame = 0;
        long at = 12;
        while (at + 8 <= riffEnd)
        {
            var type = data.Slice((int)at, 4);
            var size = BinaryPrimitives.ReadUInt32LittleEndian(data[((int)at + 4)..]);
            if (at + 8 + size > riffEnd)
            {
                throw ContainerInspector.Truncated("WebP", $"a chunk at byte {at} runs past the end of the data");
            }

            var body = data.Slice((int)at + 8, (int)size);
            if (type.SequenceEqual("VP8 "u8) || type.SequenceEqual("VP8L"u8))
            {
                sawImage = true;
            }
            else if (type.SequenceEqual("ANMF"u8) && body.Length >= 12)
            {
                sawImage = true;
                frame++;
                limits.Check(ReadUInt24(body[6..]) + 1, ReadUInt24(body[9..]) + 1, ContainerInspector.Field, $"Frame {frame} of the WebP image");
            }
            else if (type.SequenceEqual("EXIF"u8))
            {
                orientation = TiffStructure.ReadOrientation(body.StartsWith("Exif\0\0"u8) ? body[6..] : body);
            }

            at += 8 + size + (size & 1);
        }

        return sawImage ? orientation : throw ContainerInspector.Truncated("WebP", "it has no image data");
    }

    private static uint ReadUInt24(ReadOnlySpan<byte> bytes) => bytes[0] | ((uint)bytes[1] << 8) | ((uint)bytes[2] << 16);
}
