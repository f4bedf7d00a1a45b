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

    /// <summary>The most a strip of more rows than its page may take, at the most bytes a pixel can have.</summary>
    public const ulong MaxStripBytesPastThePage = 16 << 20;

    private const ulong MaxBytesPerPixel = 8;

    private const ushort BitsPerSample = 258;
    private const ushort SamplesPerPixel = 277;
    private const ushort Compression = 259;
    private const ushort RowsPerStrip = 278;
    private const ulong OldStyleJpeg = 6;
    private const ulong Jpeg = 7;

    // Directories ImageSharp reads inside each page's (their entries join the page's): Exif and GPS.
    private const ushort ExifDirectory = 34665;
    private const ushort GpsDirectory = 34853;

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

            // ImageSharp reads a page's Exif and GPS directories into the page's own list of entries, again for
            // every page that points at them: they count as the page's.
            var pageEntries = directory.Count + SubDirectoryEntries(reader, directory, ExifDirectory) + SubDirectoryEntries(reader, directory, GpsDirectory);
            entries += pageEntries;
            if (pageEntries > MaxDirectoryEntries || entries > MaxTotalEntries)
            {
                throw SegmentationException.Invalid(
                    ContainerInspector.Field,
                    $"The TIFF image's directories have too many entries (page {page}: {pageEntries}, its Exif and GPS directories included); at most {MaxDirectoryEntries} a page and {MaxTotalEntries} in all.");
            }

            var width = directory.TryGetValue(ImageWidth, out var w) && reader.TryReadValue(w, 0, out var wv) ? (long)wv : 0;
            var height = directory.TryGetValue(ImageLength, out var h) && reader.TryReadValue(h, 0, out var hv) ? (long)hv : 0;
            limits.Check(width, height, ContainerInspector.Field, $"Page {page} of the TIFF image");
            if (page == 1)
            {
                CheckChunks(reader, directory, StripOffsets, StripByteCounts);
                CheckChunks(reader, directory, TileOffsets, TileByteCounts);
                RejectJpeg(reader, directory);
                CheckRowsPerStrip(reader, directory, width, height);
                CheckBitsPerPixel(reader, directory);
                if (directory.TryGetValue(Orientation, out var o) && reader.TryReadValue(o, 0, out var ov) && ov is >= 1 and <= 8)
                {
                    orientation = (ExifOrientation)ov;
                }
            }

            offset = directory.Next;
        }

        return orientation;
    }

    // ImageSharp 2.1 decodes each strip of a JPEG-compressed page as a JPEG of its own, outside the checks of
    // this walk: without JPEG tables with Image.Load and the library's default configuration (no limits,
    // any format: a strip that was the TIFF itself was decoded as the TIFF again until the stack overflowed
    // and took the process with it, a 360-byte file the fuzzer found), with them through a JPEG parser that
    // reads past the strip, skips markers differently from any walk of ours and allocates at the first frame
    // header it finds. No check of the strips' bytes can follow that parser, so such pages are refused.
    private static void RejectJpeg(TiffReader reader, TiffDirectory directory)
    {
        if (directory.TryGetValue(Compression, out var c) && reader.TryReadValue(c, 0, out var compression) && compression is OldStyleJpeg or Jpeg)
        {
            throw SegmentationException.Invalid(
                ContainerInspector.Field,
                $"The TIFF image uses {(compression == OldStyleJpeg ? "old-style " : string.Empty)}JPEG compression ({compression}), which this server does not read; send it as JPEG or PNG, or as a TIFF with another compression.");
        }
    }

    // ImageSharp allocates (and clears) a strip's buffer for RowsPerStrip rows: a 2000x1 page declaring 65,535
    // rows a strip took 393 MB. More rows than the page has are common in small files (libtiff's default
    // strip holds about 8 KB of rows whatever the page's height), so they are refused only when such a
    // strip's buffer could pass 16 MiB; 2^32 - 1 ("one strip") is left to ImageSharp. Divided, not
    // multiplied, so that no BigTIFF value can wrap around.
    private static void CheckRowsPerStrip(TiffReader reader, TiffDirectory directory, long pageWidth, long pageHeight)
    {
        if (directory.TryGetValue(RowsPerStrip, out var entry) && reader.TryReadValue(entry, 0, out var rows) && rows != uint.MaxValue
            && rows > (ulong)pageHeight && (rows > uint.MaxValue || rows > MaxStripBytesPastThePage / MaxBytesPerPixel / (ulong)Math.Max(1, pageWidth)))
        {
            throw SegmentationException.Invalid(
                ContainerInspector.Field,
                $"The TIFF image declares {rows} rows per strip for a page of {pageWidth}x{pageHeight} pixels.");
        }
    }

    // ImageSharp decodes a page into buffers of its own pixel size before converting it: three 32-bit float
    // samples a pixel (12 bytes) on an 8192x4882 page took 653 MB and 2.9 s. The decoder's memory settings
    // assume at most MaxBytesPerPixel (ImageDecoderOptions.WidestPixelBytes).
    private static void CheckBitsPerPixel(TiffReader reader, TiffDirectory directory)
    {
        var samples = directory.TryGetValue(SamplesPerPixel, out var s) && reader.TryReadValue(s, 0, out var sv) ? sv : 1;
        if (!directory.TryGetValue(BitsPerSample, out var entry) || !reader.TryReadValue(entry, 0, out var first))
        {
            return;
        }

        // At most one sample a bit: a count past that is refused whatever its bits (0-bit samples would
        // otherwise be summed for as long as the count says: the fuzzer's, 16 s).
        var bits = 0UL;
        for (var i = 0UL; i < Math.Min(samples, MaxBytesPerPixel * 8) && bits <= MaxBytesPerPixel * 8; i++)
        {
            bits += reader.TryReadValue(entry, i, out var value) ? value : first;
        }

        if (bits > MaxBytesPerPixel * 8 || samples > MaxBytesPerPixel * 8)
        {
            throw SegmentationException.Invalid(
                ContainerInspector.Field,
                $"The TIFF image has more than {MaxBytesPerPixel * 8} bits a pixel ({samples} samples); at most {MaxBytesPerPixel * 8} are accepted.");
        }
    }

    private static ulong SubDirectoryEntries(TiffReader reader, TiffDirectory directory, ushort tag)
    {
        if (!directory.TryGetValue(tag, out var entry) || !reader.TryReadValue(entry, 0, out var offset) || offset == 0)
        {
            return 0;
        }

        // A pointer outside the data (stale Exif is common) holds nothing to parse.
        return reader.TryReadDirectory(offset, out var sub) ? sub.Count : 0;
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
