using System.Buffers.Binary;

namespace MaskFormer.Engine.Decoding.Containers;

/// <summary>
/// WebP: the RIFF size within the data and every chunk inside it (ImageSharp decodes a lossy WebP cut
/// short as black rows), one image chunk (VP8 or VP8L, with at most one ALPH) of the canvas's size, every
/// animation frame (ANMF) within the limits, every lossless bitstream (VP8L, and ALPH compressed
/// losslessly) naming at most <see cref="Vp8lPrefixGroups.MaxGroupsFor"/> its pixels' prefix-code groups, orientation
/// from EXIF. Bytes after the RIFF's end are not the image: libwebp ignores them, and ImageSharp, which
/// would read chunks there (the last image chunk winning), is handed the RIFF alone.
/// </summary>
internal static class WebpContainer
{
    public static bool Matches(ReadOnlySpan<byte> data) => data.Length >= 12 && data.StartsWith("RIFF"u8) && data.Slice(8, 4).SequenceEqual("WEBP"u8);

    public static ExifOrientation Inspect(ReadOnlySpan<byte> data, SizeLimits limits, out int imageLength)
    {
        var riffEnd = 8L + BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
        if (riffEnd > data.Length)
        {
            throw ContainerInspector.Truncated("WebP", $"the RIFF header declares {riffEnd} bytes but there are {data.Length}");
        }

        imageLength = (int)riffEnd;
        var (canvasWidth, canvasHeight) = (0, 0);
        var imageChunks = 0;

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
            if (type.SequenceEqual("VP8X"u8) && body.Length >= 10)
            {
                (canvasWidth, canvasHeight) = ((int)ReadUInt24(body[4..]) + 1, (int)ReadUInt24(body[7..]) + 1);
                limits.Check(canvasWidth, canvasHeight, ContainerInspector.Field, "The WebP image's canvas");
            }
            else if (type.SequenceEqual("VP8 "u8) || type.SequenceEqual("VP8L"u8) || type.SequenceEqual("ALPH"u8))
            {
                // One of each: a second is no image libwebp decodes, and each lossless one costs a walk.
                var kind = type.SequenceEqual("ALPH"u8) ? 1 : 2;
                if ((imageChunks & kind) != 0)
                {
                    throw ContainerInspector.Truncated("WebP", kind == 1 ? "it has two alpha chunks" : "it has two image chunks");
                }

                imageChunks |= kind;
                sawImage |= kind == 2;
                if (type.SequenceEqual("VP8 "u8) && canvasWidth > 0 && body.Length >= 10
                    && ((BinaryPrimitives.ReadUInt16LittleEndian(body[6..]) & 0x3FFF) != canvasWidth || (BinaryPrimitives.ReadUInt16LittleEndian(body[8..]) & 0x3FFF) != canvasHeight))
                {
                    // ImageSharp sizes the alpha plane by the frame, not the canvas the walk read it at.
                    throw ContainerInspector.Truncated("WebP", "its frame's size differs from its canvas's");
                }

                CheckLossless(type, body, canvasWidth, canvasHeight, limits);
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

    // The size a lossless stream declares is checked before its sub-images are read: they hold up to a
    // sixteenth of its pixels each.
    private static void CheckLossless(ReadOnlySpan<byte> type, ReadOnlySpan<byte> body, int width, int height, SizeLimits limits)
    {
        Vp8lGroups groups;
        if (type.SequenceEqual("VP8L"u8))
        {
            if (body.Length >= 5)
            {
                var header = BinaryPrimitives.ReadUInt32LittleEndian(body[1..]);
                limits.Check((header & 0x3FFF) + 1, ((header >> 14) & 0x3FFF) + 1, ContainerInspector.Field, "The lossless WebP image");
            }

            groups = Vp8lPrefixGroups.Read(body);
        }
        else if (type.SequenceEqual("ALPH"u8) && body.Length >= 1 && (body[0] & 3) == 1)
        {
            if (width == 0)
            {
                throw ContainerInspector.Truncated("WebP", "an alpha chunk comes before the image's size (VP8X)");
            }

            groups = Vp8lPrefixGroups.ReadAlpha(body[1..], width, height);
        }
        else
        {
            return;
        }

        // The decoder allocates every group's tables: they may grow with the image, never past its pixels' size.
        var accepted = Vp8lPrefixGroups.MaxGroupsFor(groups.Pixels);
        if (groups.CodeBound > accepted)
        {
            throw SegmentationException.Invalid(ContainerInspector.Field, $"The WebP image's lossless data can name up to {groups.CodeBound} prefix-code groups; at most {accepted} are accepted for {groups.Pixels} pixels (the larger of {Vp8lPrefixGroups.FloorGroups} and one per {Vp8lPrefixGroups.PixelsPerGroup} pixels, up to {Vp8lPrefixGroups.MaxGroups}), as the decoder allocates up to 64 KB of tables a group.");
        }

        if (groups.Named > groups.Tiles)
        {
            throw SegmentationException.Invalid(ContainerInspector.Field, $"The WebP image's lossless data names {groups.Named} prefix-code groups for {groups.Tiles} block(s) of pixels; an encoder names at most one a block.");
        }
    }

    private static uint ReadUInt24(ReadOnlySpan<byte> bytes) => bytes[0] | ((uint)bytes[1] << 8) | ((uint)bytes[2] << 16);
}
