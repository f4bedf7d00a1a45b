using System.Buffers.Binary;

namespace MaskFormer.Engine.Decoding.Containers;

/// <summary>
/// GIF: every frame's image descriptor within the limits (ImageSharp allocates a frame's index buffer
/// from its descriptor, whatever the logical screen says), the first frame's data complete, and a colour
/// table for the first frame. Only the first frame is decoded; later frames may be cut short.
/// </summary>
/// <remarks>
/// ImageSharp 2.1 stops after the first frame only when that frame had colours: without a global or local
/// colour table it allocates a screen-sized image, fills it, and goes on to the next frame as if it were
/// the first, so 100 one-pixel frames on an 8192x4882 screen (1.4 KB) took 10 s and 1,000 took 40 s.
/// </remarks>
internal static class GifContainer
{
    public static bool Matches(ReadOnlySpan<byte> data) => data.StartsWith("GIF87a"u8) || data.StartsWith("GIF89a"u8);

    public static void Inspect(ReadOnlySpan<byte> data, SizeLimits limits)
    {
        if (data.Length < 13)
        {
            throw ContainerInspector.Truncated("GIF", "it ends inside the logical screen descriptor");
        }

        var frames = 0;
        var at = 13 + ColorTableLength(data[10]);
        while (at < data.Length)
        {
            switch (data[at++])
            {
                case 0x3B:
                    at = data.Length;
                    break;
                case 0x21 when at < data.Length:
                    at = SkipSubBlocks(data, at + 1);
                    break;
                case 0x2C when at + 9 <= data.Length:
                    frames++;
                    var descriptor = data.Slice(at, 9);
                    if (frames == 1 && (data[10] & 0x80) == 0 && (descriptor[8] & 0x80) == 0)
                    {
                        throw SegmentationException.Invalid(ContainerInspector.Field, "The GIF image's first frame has no colour table (neither a global nor a local one).");
                    }

                    limits.Check(BinaryPrimitives.ReadUInt16LittleEndian(descriptor[4..]), BinaryPrimitives.ReadUInt16LittleEndian(descriptor[6..]), ContainerInspector.Field, $"Frame {frames} of the GIF image");
                    at = SkipSubBlocks(data, at + 9 + ColorTableLength(descriptor[8]) + 1);
                    if (frames == 1 && at > data.Length)
                    {
                        throw ContainerInspector.Truncated("GIF", "the first frame's data is cut short");
                    }

                    break;
                default:
                    // Past the first frame ImageSharp stops reading; anything after it is never decoded.
                    at = frames > 0 ? data.Length : throw ContainerInspector.Truncated("GIF", $"unexpected block 0x{data[at - 1]:X2} at byte {at - 1}");
                    break;
            }
        }

        if (frames == 0)
        {
            throw ContainerInspector.Truncated("GIF", "it has no image");
        }
    }

    private static int ColorTableLength(byte flags) => (flags & 0x80) != 0 ? 3 << ((flags & 7) + 1) : 0;

    /// <summary>The offset after the sub-blocks starting at <paramref name="at"/>; past the end when they are cut short.</summary>
    private static int SkipSubBlocks(ReadOnlySpan<byte> data, int at)
    {
        while (at < data.Length)
        {
            var size = data[at];
            at += size + 1;
            if (size == 0)
            {
                return at;
            }
        }

        return data.Length + 1;
    }
}
