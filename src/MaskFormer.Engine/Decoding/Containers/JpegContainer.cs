using System.Buffers.Binary;

namespace MaskFormer.Engine.Decoding.Containers;

/// <summary>
/// JPEG: every marker segment complete, an end-of-image marker after the scans (a file cut short has
/// none), at most <see cref="MaxScans"/> scans (each progressive scan re-reads the whole image, as
/// libjpeg-turbo's scan limit guards against), orientation from the first Exif APP1 segment.
/// </summary>
/// <remarks>
/// The scans are bounded by the start-of-scan markers anywhere in the data, not by those this walk
/// meets: ImageSharp 2.1 reads the length of a segment whose marker it has no case for (0xFFF0 to
/// 0xFFFD among others) and then parses its body as more markers, so a scan header inside such a
/// segment is decoded though the walk skips it. Every scan ImageSharp decodes starts at an 0xFF 0xDA
/// pair of its own, so counting the pairs bounds them whatever either parser does. A legitimate file
/// has one per scan (about ten for a progressive one), one more per embedded thumbnail, and now and
/// then a stray pair inside binary metadata.
/// </remarks>
internal static class JpegContainer
{
    public const int MaxScans = 100;

    public static bool Matches(ReadOnlySpan<byte> data) => data.Length >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;

    /// <summary>
    /// The most scans times the frame's pixels: each scan of a progressive image walks every block of the
    /// components it holds (ImageSharp's refinement scans every coefficient, even inside end-of-band runs), so
    /// 99 refinement scans of an 8192x4882 frame, 6.4 KB, took 7.7 s. Twenty scans of the largest image
    /// accepted, a hundred up to a fifth of it; libjpeg writes about ten.
    /// </summary>
    public static long ScanPixelBudget(SizeLimits limits) => 20 * limits.MaxPixels;

    public static ExifOrientation Inspect(ReadOnlySpan<byte> data, SizeLimits limits)
    {
        var scanMarkers = CountScanMarkers(data);
        if (scanMarkers > MaxScans)
        {
            throw SegmentationException.Invalid(ContainerInspector.Field, $"The JPEG image has more than {MaxScans} scans.");
        }

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
            else if (marker == 0xDA)
            {
                scans++;
            }
            else if (marker is >= 0xC0 and <= 0xCF and not (0xC4 or 0xC8 or 0xCC) && body.Length >= 5)
            {
                // A frame header: precision, height, width.
                var pixels = (long)BinaryPrimitives.ReadUInt16BigEndian(body[1..]) * BinaryPrimitives.ReadUInt16BigEndian(body[3..]);
                if (scanMarkers * pixels > ScanPixelBudget(limits))
                {
                    throw SegmentationException.Invalid(ContainerInspector.Field, $"The JPEG image has {scanMarkers} scans of {pixels} pixels; scans times pixels may be at most {ScanPixelBudget(limits)}.");
                }
            }

            at += length;
        }
    }

    // The 0xFF 0xDA pairs in the data, wherever they are; stops counting past the limit.
    private static int CountScanMarkers(ReadOnlySpan<byte> data)
    {
        var count = 0;
        for (var at = data.IndexOf([(byte)0xFF, (byte)0xDA]); at >= 0 && count <= MaxScans; at = data.IndexOf([(byte)0xFF, (byte)0xDA]))
        {
            count++;
            data = data[(at + 2)..];
        }

        return count;
    }
}
