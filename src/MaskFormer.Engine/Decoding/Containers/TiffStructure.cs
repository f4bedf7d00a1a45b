namespace MaskFormer.Engine.Decoding.Containers;

/// <summary>
/// Reads TIFF image file directories, classic and BigTIFF, in either byte order. For a TIFF image:
/// every page's declared size within the limits (ImageSharp identifies the first page only) and the
/// first page's strips or tiles inside the data. For Exif blocks (JPEG APP1, PNG eXIf, WebP EXIF):
/// the orientation tag, where a broken block means "as stored", as browsers treat it.
/// </summary>
internal static class TiffStructure
{
    /// <summary>More pages than any document scanner writes; guards against directory chains that never end.</summary>
    public const int MaxPages = 10_000;

    private const ushort ImageWidth = 256;
    private const ushort ImageLength = 257;
    private const ushort StripOffsets = 273;
    private const ushort Orientation = 274;
    private const ushort StripByteCounts = 279;
    private const ushort TileOffsets = 324;
    private const ushort TileByteCounts = 325;

    public static bool Matches(ReadOnlySpan<byte> data) =>
        data.Length >= 4 && ((data[0] == 'I' && data[1] == 'I' && data[3] == 0 && data[2] is 42 or 43) || (data[0] == 'M' && data[1] == 'M' && data[2] == 0 && data[3] is 42 or 43));

    public static ExifOrientation ReadOrientation(ReadOnlySpan<byte> exif)
    {
        if (!Matches(exif) || !TiffReader.TryCreate(exif, out var reader) || !reader.TryReadDirectory(reader.FirstDirectory, out var directory))
        {
            return ExifOrientation.TopLeft;
        }

        return directory.TryGetValue(Orientation, out var value) && reader.TryReadValue(value, 0, out var orientation) && orientation is >= 1 and <= 8
            ? (ExifOrientation)orientation
            : ExifOrientation.TopLeft;
    }

    public static ExifOrientation InspectTiff(ReadOnlySpan<byte> data, SizeLimits limits)
    {
        if (!TiffReader.TryCreate(data, out var reader))
        {
            throw ContainerInspector.Truncated("TIFF", "its header is incomplete");
        }

        var orientation = ExifOrientation.TopLeft;
        var visited = new HashSet<ulong>();
        var offset = reader.FirstDirectory;
        for (var page = 1; offset != 0; page++)
        {
            if (page > MaxPages || !visited.Add(offset))
            {
                throw SegmentationException.Invalid(ContainerInspector.Field, $"The TIFF image has more than {MaxPages} pages or a directory loop.");
            }

            if (!reader.TryReadDirectory(offset, out var directory))
            {
                // ImageSharp reads every directory, so a broken later one fails the image as well.
                throw ContainerInspector.Truncated("TIFF", $"the directory of page {page} at byte {offset} lies outside the data");
            }

            var width = directory.TryGetValue(ImageWidth, out var w) && reader.TryReadValue(w, 0, out var wv) ? (long)wv : 0;
            var height = directory.TryGetValue(ImageLength, out var h) && reader.TryReadValue(h, 0, out var hv) ? (long)hv : 0;
            limits.Check(width, height, ContainerInspector.Field, $"Page {page} of the TIFF image");
            if (page == 1)
            {
                CheckChunks(reader, directory, StripOffsets, StripByteCounts);
                CheckChunks(reader, directory, TileOffsets, TileByteCounts);
                if (directory.TryGetValue(Orientation, out var o) && reader.TryReadValue(o, 0, out var ov) && ov is >= 1 and <= 8)
                {
                    orientation = (ExifOrientation)ov;
                }
            }

            offset = directory.Next;
        }

        return orientation;
    }

    private static void CheckChunks(TiffReader reader, TiffDirectory directory, ushort offsetsTag, ushort countsTag)
    {
        if (!directory.TryGetValue(offsetsTag, out var offsets) || !directory.TryGetValue(countsTag, out var counts))
        {
            return;
        }

        if (offsets.Count != counts.Count)
        {
            throw ContainerInspector.Truncated("TIFF", $"{offsets.Count} data offsets but {counts.Count} byte counts");
        }

        for (ulong i = 0; i < offsets.Count; i++)
        {
            if (!reader.TryReadValue(offsets, i, out var start) || !reader.TryReadValue(counts, i, out var length) || start > (ulong)reader.Length || length > (ulong)reader.Length - start)
            {
                throw ContainerInspector.Truncated("TIFF", $"strip or tile {i} of the first page lies outside the data");
            }
        }
    }
}
