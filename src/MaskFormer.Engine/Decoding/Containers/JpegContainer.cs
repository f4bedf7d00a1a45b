using System.Buffers.Binary;

namespace MaskFormer.Engine.Decoding.Containers;

/// <summary>
/// JPEG: every marker segment complete, an end-of-image marker after the scans (a file cut short has
/// none), at most <see cref="MaxScans"/> scans (each progressive scan re-reads the whole image, as
/// libjpeg-turbo's scan limit guards against), orientation from the first Exif APP1 segment.
/// </summary>
internal static class JpegContainer
{
    public const int MaxScans = 100;

    public static bool Matches(ReadOnlySpan<byte> data) => data.Length >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;

    public static ExifOrientation Inspect(ReadOnlySpan<byte> data)
    {
        var orientation = ExifOrientation.TopLeft;
        var sawExif = false;
        var scans = 0;
        var at = 2;
        while (true)
        {
            // Entropy-coded data after a scan header stuffs every 0xFF with 0x00, so the next 0xFF that is
            // followed by neither 0x00, a restart marker nor another 0xFF is the next marker.
            var next = data[at..].IndexOf((byte)0xFF);
            if (next < 0)
            {
                throw ContainerInspector.Truncated("JPEG", "it has no end-of-image marker");
            }

            at += next;
            while (at < data.Length && data[at] == 0xFF)
            {
                at++;
            }

            if (at >= data.Length)
            {
                throw ContainerInspector.Truncated("JPEG", "it has no end-of-image marker");
            }

            var marker = data[at++];
            if (marker == 0xD9)
            {
                return scans > 0 ? orientation : throw ContainerInspector.Truncated("JPEG", "it ends before any image data");
            }

            if (marker is 0x00 or 0x01 or (>= 0xD0 and <= 0xD7))
            {
                continue;
            }

            if (at + 2 > data.Length)
            {
                throw ContainerInspector.Truncated("JPEG", "it ends inside a marker segment");
            }

            var length = BinaryPrimitives.ReadUInt16BigEndian(data[at..]);
            if (length < 2 || at + length > data.Length)
            {
                throw ContainerInspector.Truncated("JPEG", $"the segment of marker 0xFF{marker:X2} at byte {at - 2} runs past the end of the data");
            }

            var body = data.Slice(at + 2, length - 2);
            if (marker == 0xE1 && !sawExif && body.StartsWith("Exif\0\0"u8))
            {
                sawExif = true;
                orientation = TiffStructure.ReadOrientation(body[6..]);
            }
            else if (marker == 0xDA && ++scans > MaxScans)
            {
                throw SegmentationException.Invalid(ContainerInspector.Field, $"The JPEG image has more than {MaxScans} scans.");
            }

            at += length;
        }
    }
}
