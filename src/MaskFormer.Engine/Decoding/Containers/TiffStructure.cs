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

    /// <summary>
    /// Entries in one page's directory: real files carry a few dozen. ImageSharp's directory parsing costs
    /// the square of the entries, before any pixel, so 150,000 entries in a 3 MB file took 25 s of CPU.
    /// </summary>
    public const int MaxDirectoryEntries = 1_000;

    /// <summary>Entries over all pages' directories.</summary>
    public const int MaxTotalEntries = 100_000;

    private const ushort Compression = 259;
    private const ushort RowsPerStrip = 278;
    private const ushort TileWidth = 322;
    private const ushort TileLength = 323;
    private const ulong OldStyleJpeg = 6;
    private const ulong Jpeg = 7;

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
        ulong entries = 0;
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

            entries += directory.Count;
            if (directory.Count > MaxDirectoryEntries || entries > MaxTotalEntries)
            {
                throw SegmentationException.Invalid(
                    ContainerInspector.Field,
                    $"The TIFF image's directories have too many entries (page {page}: {directory.Count}); at most {MaxDirectoryEntries} a page and {MaxTotalEntries} in all.");
            }

            var width = directory.TryGetValue(ImageWidth, out var w) && reader.TryReadValue(w, 0, out var wv) ? (long)wv : 0;
            var height = directory.TryGetValue(ImageLength, out var h) && reader.TryReadValue(h, 0, out var hv) ? (long)hv : 0;
            limits.Check(width, height, ContainerInspector.Field, $"Page {page} of the TIFF image");
            if (page == 1)
            {
                CheckChunks(reader, directory, StripOffsets, StripByteCounts);
                CheckChunks(reader, directory, TileOffsets, TileByteCounts);
                CheckJpegChunks(data, reader, directory, width, height);
                if (directory.TryGetValue(Orientation, out var o) && reader.TryReadValue(o, 0, out var ov) && ov is >= 1 and <= 8)
                {
                    orientation = (ExifOrientation)ov;
                }
            }

            offset = directory.Next;
        }

        return orientation;
    }

    // ImageSharp decodes each JPEG strip or tile of a JPEG-compressed page as an image of its own, with
    // the library's default configuration: the size its frame header declares escapes the server's
    // limits and allocator (a 991-byte file declaring 65000x20000 took 3.7 GB). Each must declare no more
    // than its strip or tile (rounded up to whole 16-pixel blocks, as encoders pad). And each must be a
    // JPEG: that default configuration reads any format it recognises, so a strip that is the TIFF itself
    // (offset 0) was decoded as the TIFF again, strip by strip, until the stack overflowed and took the
    // process with it (a 361-byte file the fuzzer found).
    private static void CheckJpegChunks(ReadOnlySpan<byte> data, TiffReader reader, TiffDirectory directory, long pageWidth, long pageHeight)
    {
        if (!directory.TryGetValue(Compression, out var c) || !reader.TryReadValue(c, 0, out var compression) || compression is not (OldStyleJpeg or Jpeg))
        {
            return;
        }

        if (compression == OldStyleJpeg)
        {
            throw SegmentationException.Invalid(ContainerInspector.Field, "The TIFF image uses old-style JPEG compression (6), which this server does not read; send it as JPEG or PNG.");
        }

        var tiled = directory.TryGetValue(TileOffsets, out _);
        var (chunkWidth, chunkHeight) = tiled
            ? (Value(reader, directory, TileWidth, 0), Value(reader, directory, TileLength, 0))
            : (pageWidth, Math.Min(pageHeight, Value(reader, directory, RowsPerStrip, pageHeight)));
        var (offsetsTag, countsTag) = tiled ? (TileOffsets, TileByteCounts) : (StripOffsets, StripByteCounts);
        if (!directory.TryGetValue(offsetsTag, out var offsets) || !directory.TryGetValue(countsTag, out var counts))
        {
            return;
        }

        for (ulong i = 0; i < offsets.Count; i++)
        {
            // CheckChunks has put every chunk inside the data.
            reader.TryReadValue(offsets, i, out var start);
            reader.TryReadValue(counts, i, out var length);
            var chunk = data.Slice((int)start, (int)length);
            if (!JpegContainer.Matches(chunk))
            {
                throw SegmentationException.Invalid(
                    ContainerInspector.Field,
                    $"JPEG {(tiled ? "tile" : "strip")} {i} of the TIFF image is not a JPEG (it does not start FF D8 FF).");
            }

            if (JpegContainer.TryReadFrameSize(chunk, out var width, out var height)
                && (width > RoundUp(chunkWidth) || height > RoundUp(chunkHeight)))
            {
                throw SegmentationException.Invalid(
                    ContainerInspector.Field,
                    $"JPEG {(tiled ? "tile" : "strip")} {i} of the TIFF image declares {width}x{height} pixels, more than its {chunkWidth}x{chunkHeight}.");
            }
        }

        static long Value(TiffReader reader, TiffDirectory directory, ushort tag, long fallback) =>
            directory.TryGetValue(tag, out var entry) && reader.TryReadValue(entry, 0, out var value) ? (long)Math.Min(value, long.MaxValue) : fallback;

        static long RoundUp(long pixels) => (pixels + 15) / 16 * 16;
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
