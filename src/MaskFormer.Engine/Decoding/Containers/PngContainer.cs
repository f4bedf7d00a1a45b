using System.Buffers.Binary;

namespace MaskFormer.Engine.Decoding.Containers;

/// <summary>
/// PNG: one IHDR, first, within the limits; every chunk complete up to IEND; APNG frame sizes (fcTL) within
/// the limits; orientation from eXIf.
/// </summary>
internal static class PngContainer
{
    private static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    public static bool Matches(ReadOnlySpan<byte> data) => data.StartsWith(Signature);

    public static ExifOrientation Inspect(ReadOnlySpan<byte> data, SizeLimits limits)
    {
        var orientation = ExifOrientation.TopLeft;
        var sawData = false;
        var frame = 0;
        long at = Signature.Length;
        while (true)
        {
            if (at + 12 > data.Length)
            {
                throw ContainerInspector.Truncated("PNG", "it ends before the IEND chunk");
            }

            var length = BinaryPrimitives.ReadUInt32BigEndian(data[(int)at..]);
            var type = data.Slice((int)at + 4, 4);
            if (at + 12 + length > data.Length)
            {
                throw ContainerInspector.Truncated("PNG", $"chunk '{Ascii(type)}' at byte {at} declares {length} bytes past the end of the data");
            }

            var body = data.Slice((int)at + 8, (int)length);
            if (type.SequenceEqual("IHDR"u8) != (at == Signature.Length))
            {
                // ImageSharp 2.1 sizes the image from the header it last read before the first IDAT and
                // identifies it by the last one in the file: a huge IHDR, IDAT, then a small IHDR allocated
                // the huge image while the limits saw the small one.
                throw SegmentationException.Invalid(ContainerInspector.Field, "The PNG image must have one IHDR chunk, its first.");
            }

            if (type.SequenceEqual("IHDR"u8))
            {
                if (body.Length != 13)
                {
                    throw SegmentationException.Invalid(ContainerInspector.Field, $"The PNG image's IHDR chunk holds {body.Length} bytes, not 13.");
                }

                limits.Check(BinaryPrimitives.ReadUInt32BigEndian(body), BinaryPrimitives.ReadUInt32BigEndian(body[4..]), ContainerInspector.Field, "The PNG image");
            }

            if (type.SequenceEqual("IEND"u8))
            {
                return sawData ? orientation : throw ContainerInspector.Truncated("PNG", "it has no IDAT chunk");
            }

            if (type.SequenceEqual("IDAT"u8))
            {
                sawData = true;
            }
            else if (type.SequenceEqual("eXIf"u8))
            {
                orientation = TiffStructure.ReadOrientation(body);
            }
            else if (type.SequenceEqual("fcTL"u8) && body.Length >= 12)
            {
                frame++;
                limits.Check(BinaryPrimitives.ReadUInt32BigEndian(body[4..]), BinaryPrimitives.ReadUInt32BigEndian(body[8..]), ContainerInspector.Field, $"Frame {frame} of the PNG image");
            }

            at += 12 + length;
        }
    }

    private static string Ascii(ReadOnlySpan<byte> type)
    {
        Span<char> chars = stackalloc char[4];
        for (var i = 0; i < 4; i++)
        {
            chars[i] = type[i] is >= 0x20 and < 0x7F ? (char)type[i] : '?';
        }

        return new string(chars);
    }
}
