using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Decoding.Containers;
using Microsoft.Extensions.Options;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Advanced;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace MaskFormer.Engine.Tests.Decoding;

public sealed class HostileImageTests : IDisposable
{
    private readonly ImageDecoder _decoder = new(Options.Create(new ImageDecoderOptions { MaxDimension = 4096, MaxPixels = 1_000_000 }));

    public static TheoryData<string, double> CutShort()
    {
        var data = new TheoryData<string, double>();
        foreach (var format in HostileImages.Formats.Append("tga-rle"))
        {
            foreach (var fraction in new[] { 0.3, 0.7, 0.98 })
            {
                data.Add(format, fraction);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(CutShort))]
    public void Decode_CutShort_InvalidArgumentNamingTheImage(string format, double fraction)
    {
        var whole = HostileImages.Encode(format);
        using (var decoded = _decoder.Decode(whole))
        {
            Assert.Equal((64, 48), (decoded.Width, decoded.Height));
        }

        AssertInvalid(HostileImages.Truncate(whole, fraction));
    }

    [Fact]
    public void Decode_Netpbm_NotAFormatThisServerReads()
    {
        var error = AssertInvalid(HostileImages.Netpbm());

        Assert.Contains("no format this server reads", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_TiffWithHugeSecondPage_RejectedNamingThePage()
    {
        var error = AssertInvalid(HostileImages.Tiff((1, 1), (20000, 20000)));

        Assert.Contains("Page 2 of the TIFF image is 20000x20000", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_TiffWithSmallPages_DecodesTheFirstPageOnly()
    {
        using var decoded = _decoder.Decode(HostileImages.Tiff((3, 2), (5, 7), (9, 9)));

        Assert.Equal((3, 2), (decoded.Width, decoded.Height));
        Assert.Equal(new byte[] { 0, 0, 0, 37, 37, 37, 74, 74, 74 }, decoded.Row(0).ToArray());
    }

    [Fact]
    public void Decode_TiffJpegStrip_RejectedAsUnsupported()
    {
        // ImageSharp decodes a JPEG strip outside this server's limits (a strip declaring 5000x5000 pixels
        // took its own allocation) and with a parser no check of ours can follow: such pages are refused.
        foreach (var declared in new[] { (16, 16), (5000, 5000) })
        {
            var error = AssertInvalid(HostileImages.TiffWithStrip(16, 16, HostileImages.JpegDeclaring(16, 16, declared)));

            Assert.Contains("The TIFF image uses JPEG compression (7), which this server does not read", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Decode_TiffJpegStripThatIsTheTiffItself_RejectedNotRecursedInto()
    {
        // The fuzzer's 360 bytes: a JPEG-compressed page whose one strip starts at byte 0, the TIFF itself.
        // ImageSharp decoded it as a TIFF again, strip by strip, until the stack overflowed (a process crash).
        var tiff = Convert.FromBase64String(
            "SUkqAJgAAAAAAAAfAAc/AA5fABV/AByfACO/ACrfADEAKg0fKgo/KgNfKhh/KhGfKi6/KiffKjwAVRofVR0Pf1UGn1V/VQafVTm/" +
            "VTDsVSsAfycffyA/fylffzJ/fzuffwS/fw3ffxYAqjQfqjM/qjpfqiF/qiifqhe/qh7fqgUA1EEf1EY/1E9f1FR/1F2f1GK/1Gvf" +
            "1HAOAAABBAABAAAACAAAAAEBBAABAAAABgAAAAIBAwADAAAARgEAAAMBAwABAAAABwAAAAYBAwABAAAABgAAABcBBAABAAAACAAA" +
            "ABUABAABAAAUAwAAABYBBAABAAAAAgAAABEBBAABAAAAAAAAABoBBQABAAAATAEAABsBBQABAAAAVAEAABwBAwABAAAAAQAAACgB" +
            "AwABAAAAAgAAADEBAgALAAAAXAEAAAAAAAAIAAgACABgAAAAAQAAAGAAAAABAAAAW21hZ2VTaGFycAAA");

        var error = AssertInvalid(tiff);

        Assert.Contains("uses JPEG compression (7)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_TiffJpegStripThatIsAPng_Rejected()
    {
        var error = AssertInvalid(HostileImages.TiffWithStrip(64, 48, HostileImages.Encode("png")));

        Assert.Contains("uses JPEG compression (7)", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(2000, 1u, 1u, true)]
    [InlineData(2000, 4u, 1048u, true)]
    [InlineData(2000, 4u, 1049u, false)]
    [InlineData(2000, 1u, 65535u, false)]
    [InlineData(31, 20u, 264u, true)]
    public void Decode_TiffRowsPerStrip_MoreThanThePageOnlyInASmallStrip(int width, uint height, uint rowsPerStrip, bool decodes)
    {
        // ImageSharp allocates and clears RowsPerStrip rows for each strip: 65,535 rows of a 2000-pixel page
        // are 393 MB. Up to 16 MiB at 8 bytes a pixel passes (2000 x 1048 x 8 does, 2000 x 1049 x 8 does not),
        // as libtiff's default strip of about 8 KB does on a small page (264 rows of 31 grey pixels).
        var tiff = HostileImages.TiffWithStrip(width, (int)height, new byte[width * 3 * (int)height], compression: 1, rowsPerStrip: rowsPerStrip);

        AssertDecodesOrRejected(tiff, decodes, (width, (int)height), $"declares {rowsPerStrip} rows per strip for a page of {width}x{height} pixels");
    }

    [Fact]
    public void Decode_TiffExifPointerOutsideTheData_CountsNothingAndDecodes()
    {
        // Stale Exif pointers are common: nothing there to parse, nothing to count.
        var tiff = HostileImages.TiffWithStrip(4, 4, new byte[48], compression: 1, exifEntries: 1);
        var pointer = tiff.AsSpan().IndexOf(new byte[] { 0x69, 0x87, 4, 0 }) + 8;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(tiff.AsSpan(pointer), 1_000_000);

        using var decoded = _decoder.Decode(tiff);

        Assert.Equal((4, 4), (decoded.Width, decoded.Height));
    }

    [Fact]
    public void Decode_PngHeaderOfTheWrongLength_Rejected()
    {
        var png = HostileImages.Encode("png", 8, 8);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(8), 7);

        var error = AssertInvalid(png);

        Assert.Contains("IHDR chunk holds 7 bytes, not 13", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(990, true)]
    [InlineData(992, false)]
    public void Decode_TiffExifDirectoryEntries_CountAsThePages(int exifEntries, bool decodes)
    {
        // 10 entries of the page's own (its 9 and the Exif pointer) plus the Exif directory's: 1000 decodes, 1002 does not.
        var tiff = HostileImages.TiffWithStrip(4, 4, new byte[48], compression: 1, exifEntries: exifEntries);

        AssertDecodesOrRejected(tiff, decodes, (4, 4), "page 1: 1002, its Exif and GPS directories included");
    }

    [Fact]
    public void Decode_PngWithASecondHeaderAfterItsData_Rejected()
    {
        // ImageSharp 2.1 allocated the first IHDR's size and identified the image by the last one's.
        var error = AssertInvalid(HostileImages.PngWithSecondHeader((1000, 1000), (8, 8)));

        Assert.Contains("must have one IHDR chunk, its first", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_PngHeaderOverTheLimits_RejectedBeforeDecoding()
    {
        var error = AssertInvalid(HostileImages.PngDeclaring(5000, 5000));

        Assert.Contains("The PNG image is 5000x5000", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_TiffOldStyleJpeg_RejectedAsUnsupported()
    {
        var error = AssertInvalid(HostileImages.TiffWithStrip(16, 16, HostileImages.JpegDeclaring(16, 16, (16, 16)), compression: 6));

        Assert.Contains("old-style JPEG", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(990, true)]
    [InlineData(1000, false)]
    public void Decode_TiffDirectoryEntries_AtMostAThousandAPage(int extraEntries, bool decodes)
    {
        // 9 entries of the page's own plus the extra ones: 999 decodes, 1009 does not.
        var tiff = HostileImages.TiffWithStrip(4, 4, new byte[48], compression: 1, extraEntries);

        AssertDecodesOrRejected(tiff, decodes, (4, 4), "page 1: 1009");
    }

    [Fact]
    public void Decode_GifFrameLargerThanTheLimits_RejectedBeforeDecoding()
    {
        var error = AssertInvalid(HostileImages.Gif(1, 1, (1, 1), (20000, 20000)));

        Assert.Contains("Frame 2 of the GIF image is 20000x20000", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_AnimatedGif_GivesTheFirstFrame()
    {
        using var animation = new Image<Rgb24>(4, 4, new Rgb24(255, 0, 0));
        for (var i = 0; i < 20; i++)
        {
            using var frame = new Image<Rgb24>(4, 4, new Rgb24(0, 0, 255));
            animation.Frames.AddFrame(frame.Frames.RootFrame);
        }

        using var decoded = _decoder.Decode(HostileImages.Encode(animation, "gif"));

        Assert.Equal(new byte[] { 255, 0, 0 }, decoded.Row(3)[^3..].ToArray());
    }

    [Theory]
    [InlineData(4097)]
    [InlineData(65536)]
    public void Decode_LosslessWebpNamingMorePrefixGroupsThanTheLimit_Rejected(int groups)
    {
        // ImageSharp allocates every group's tables up to the largest group the entropy image names:
        // 65,536 groups in a 164 KB file declaring 1x1 took 1.5 GB and 6 s.
        var error = AssertInvalid(HostileImages.WebpLosslessNamingGroups(groups));

        Assert.Contains($"up to {groups} prefix-code groups", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_LosslessWebpNamingMoreGroupsThanItHasBlocks_Rejected()
    {
        // A 1x1 image's one block naming group 1: two groups' tables for one block, which no encoder writes.
        var error = AssertInvalid(HostileImages.WebpLosslessNamingGroups(2));

        Assert.Contains("names 2 prefix-code groups for 1 block(s)", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(256, 4096, 0, 256)]
    [InlineData(256, 4096, 11, 256)]
    [InlineData(256, 257, 0, 256)]
    [InlineData(256, 256, 11, 256)]
    [InlineData(2100, 270, 0, 269)]
    [InlineData(2100, 269, 0, 269)]
    public void Decode_LosslessWebpPrefixGroups_BoundedByItsPixels(int side, int groups, int colourCacheBits, int accepted)
    {
        // ImageSharp allocates 40 KB of tables a group (64 KB with an 11-bit colour cache): 4,096 groups, one
        // per 4x4 block of a 256x256 image in a 10 KB file, took 164 MB (263 MB with the cache). Any image may
        // name 256 groups; past that, one per 16,384 pixels (2100x2100: 269). Real encoders wrote at most 36.
        using var decoder = new ImageDecoder(Options.Create(new ImageDecoderOptions { MaxPixels = 5_000_000 }));
        var data = HostileImages.WebpLosslessNamingGroups(groups, side, prefixBits: 2, colourCacheBits);
        if (groups > accepted)
        {
            var error = Assert.Throws<SegmentationException>(() => decoder.Decode(data).Dispose());
            Assert.Equal(SegmentationErrorKind.InvalidArgument, error.Kind);
            Assert.Contains($"up to {groups} prefix-code groups; at most {accepted} are accepted for {side * side} pixels", error.Message, StringComparison.Ordinal);
            return;
        }

        using var image = decoder.Decode(data);
        Assert.Equal((side, side), (image.Width, image.Height));
    }

    [Theory]
    [InlineData(1L, 256)]
    [InlineData(4_210_687L, 256)]
    [InlineData(4_210_688L, 257)]
    [InlineData(40_000_000L, 2441)]
    [InlineData(67_108_864L, 4096)]
    [InlineData(1L << 40, 4096)]
    public void MaxGroupsFor_TheFloorThenOnePer16384PixelsUpToTheCap(long pixels, int groups) => Assert.Equal(groups, Vp8lPrefixGroups.MaxGroupsFor(pixels));

    [Theory]
    [InlineData("photo", 0, 0)]
    [InlineData("photo", 4, 75)]
    [InlineData("photo", 6, 100)]
    [InlineData("noise", 6, 100)]
    [InlineData("labels", 6, 100)]
    public void Decode_LosslessWebpFromImageSharpsEncoder_FarWithinTheGroupBound(string content, int method, int quality)
    {
        // ImageSharp's encoder, a port of libwebp's, at its least and most effort: few groups (at most 36, this
        // photo's at method 6, in the measurements; libwebp 32 for 11 megapixels), a quarter of the bound at most.
        using var picture = content switch
        {
            "photo" => Image.Load<Rgb24>(Path.Combine(RepositoryPaths.HeldOut, "0000.png")),
            "labels" => Image.Load<Rgb24>(Path.Combine(RepositoryPaths.HeldOut, "0000_semantic.png")),
            _ => Noise(),
        };
        picture.Mutate(context => context.Resize(720, 540, content == "labels" ? KnownResamplers.NearestNeighbor : KnownResamplers.Bicubic));
        using var stream = new MemoryStream();
        picture.Save(stream, new SixLabors.ImageSharp.Formats.Webp.WebpEncoder
        {
            FileFormat = SixLabors.ImageSharp.Formats.Webp.WebpFileFormatType.Lossless,
            Method = (SixLabors.ImageSharp.Formats.Webp.WebpEncodingMethod)method,
            Quality = quality,
        });

        var groups = Vp8lPrefixGroups.Read(HostileImages.WebpChunk(stream.ToArray(), "VP8L"));
        using var decoded = _decoder.Decode(stream.ToArray());

        Assert.InRange(groups.CodeBound, groups.Named, Vp8lPrefixGroups.MaxGroupsFor(groups.Pixels) / 4);
        AssertPixels(picture, decoded);
    }

    [Fact]
    public void Decode_LossyWebpWhoseLosslessAlphaNamesTooManyPrefixGroups_Rejected()
    {
        var error = AssertInvalid(HostileImages.WebpAlphaNamingGroups(65536));

        Assert.Contains("prefix-code groups", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_WebpWithAnImageChunkAfterItsRiffEnd_DecodesTheRiffsImage()
    {
        // ImageSharp reads on past the RIFF end and decodes the last image chunk it finds, cut short or not;
        // libwebp ignores what follows the RIFF, and so does the decoder.
        using var image = _decoder.Decode(HostileImages.WebpWithImageAfterRiff());

        Assert.Equal((1, 1), (image.Width, image.Height));
    }

    [Fact]
    public void Decode_LossyWebpFrameOfAnotherSizeThanItsCanvas_Rejected()
    {
        // ImageSharp sizes a lossless alpha plane by the frame, so the walk, which reads it at the canvas's
        // size, must see the same size.
        var error = AssertInvalid(HostileImages.WebpFrameLargerThanItsCanvas());

        Assert.Contains("frame's size differs from its canvas's", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(96, 64)]
    [InlineData(640, 480)]
    public void Decode_LosslessWebpOfAPhoto_GivesItsPixels(int width, int height)
    {
        // A real picture's lossless stream (transforms, colour cache, several prefix groups) passes the walk.
        using var photo = Image.Load<Rgb24>(Path.Combine(RepositoryPaths.HeldOut, "0000.png"));
        photo.Mutate(context => context.Resize(width, height));

        using var decoded = _decoder.Decode(HostileImages.Encode(photo, "webp-lossless"));

        AssertPixels(photo, decoded);
    }

    [Fact]
    public void Decode_LibwebpLosslessFrame_PassesTheGroupBoundAndGivesItsPixels()
    {
        // libwebp's own encoder (ffmpeg -c:v libwebp -lossless 1 -compression_level 6 on the clip's first
        // frame): transforms, then a meta prefix image naming several groups, read past symbol by symbol.
        var data = File.ReadAllBytes(Path.Combine(FixturesFolder, "libwebp-lossless-frame_000.webp"));

        var groups = Vp8lPrefixGroups.Read(HostileImages.WebpChunk(data, "VP8L"));
        using var decoded = _decoder.Decode(data);
        using var expected = Image.Load<Rgb24>(Path.Combine(RepositoryPaths.TinyShapes, "clip", "frame_000.png"));

        Assert.InRange(groups.Named, 2, groups.Tiles);
        Assert.InRange(groups.CodeBound, groups.Named, Vp8lPrefixGroups.MaxGroupsFor(groups.Pixels) / 4);
        AssertPixels(expected, decoded);
    }

    [Fact]
    public void Decode_LibwebpLossyFrameWithLosslessAlpha_PassesTheGroupBound()
    {
        // libwebp's lossy encoding with an alpha ramp, the alpha plane compressed losslessly (ALPH method 1).
        var data = File.ReadAllBytes(Path.Combine(FixturesFolder, "libwebp-lossy-alpha-frame_000.webp"));
        var alpha = HostileImages.WebpChunk(data, "ALPH");

        var groups = Vp8lPrefixGroups.ReadAlpha(alpha.AsSpan(1), 160, 120);
        using var decoded = _decoder.Decode(data);

        Assert.Equal(1, alpha[0] & 3);
        Assert.InRange(groups.Named, 1, groups.Tiles);
        Assert.InRange(groups.CodeBound, groups.Named, Vp8lPrefixGroups.MaxGroupsFor(groups.Pixels) / 4);
        Assert.Equal((160, 120), (decoded.Width, decoded.Height));
    }

    [Theory]
    [InlineData(257u)]
    [InlineData(500_000_000u)]
    public void Decode_BmpDeclaringAPaletteOfMoreThan256Colours_Rejected(uint colours)
    {
        // ImageSharp allocates the declared palette before it looks for the pixels: 500 million colours, 2 GB.
        var error = AssertInvalid(HostileImages.BmpDeclaringColours(colours));

        Assert.Contains($"a palette of {colours} colours", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_BmpWhosePixelsStartPastTheEnd_Rejected()
    {
        // The fuzzer's: a 16-byte OS/2 info header (no colour count) and pixels at byte 2^31 - 1; ImageSharp
        // sized the palette by the gap up to them and threw OutOfMemoryException in Identify.
        var seed = File.ReadAllBytes(Path.Combine(RepositoryPaths.Root, "fuzz", "corpus", "bmp-pixels-past-the-end"));

        var error = AssertInvalid(seed[1..]);

        Assert.Contains("past the end of the data", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_BmpArray_Rejected()
    {
        var error = AssertInvalid(HostileImages.BmpDeclaringColours(2, array: true));

        Assert.Contains("OS/2 bitmap arrays", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_RunLengthTgaWhosePacketsDoNotCoverItsPixels_Rejected()
    {
        // ImageSharp took the end of the data for runs of 128 pixels until the image was full: an 18-byte
        // header declaring 8192x4882 decoded in 2-3 s. Packets covering every pixel decode; one packet short does not.
        using (var whole = _decoder.Decode(HostileImages.TgaRunLength(64, 48, 24)))
        {
            Assert.Equal((64, 48), (whole.Width, whole.Height));
        }

        var error = AssertInvalid(HostileImages.TgaRunLength(1000, 1000, 0));

        Assert.Contains("cover 0 of its 1000000 pixels", error.Message, StringComparison.Ordinal);
        AssertInvalid(HostileImages.TgaRunLength(64, 48, 23));
    }

    [Fact]
    public void Decode_JpegOfManyScansOverALargeFrame_Rejected()
    {
        // Each scan of a progressive image walks every block: 99 refinement scans of 8192x4882 took 7.7 s.
        // Scans times pixels are bounded; few scans of a large frame, or many of a small one, pass the walk.
        var error = AssertInvalid(HostileImages.JpegWithScansDeclaring(21, 8192, 4882));

        Assert.Contains("scans times pixels", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(3, 32, false)]
    [InlineData(5, 16, false)]
    [InlineData(100_000, 0, false)]
    [InlineData(4, 16, true)]
    public void Decode_TiffOfMoreThan64BitsAPixel_Rejected(int samples, int bits, bool accepted)
    {
        // ImageSharp decodes a page into buffers of its own pixel size: 3 x 32-bit float samples on an
        // 8192x4882 page took 653 MB and 2.9 s; the memory settings assume at most 8 bytes a pixel. More
        // than 64 samples are refused whatever their bits (the fuzzer's: summing 0-bit samples took 16 s).
        // The seed fuzz/corpus/tiff-zero-bit-samples is that input.
        var data = HostileImages.TiffWithSamples(samples, bits);
        if (accepted)
        {
            var error = Record.Exception(() => _decoder.Decode(data).Dispose());

            Assert.False(error is SegmentationException { Message: var message } && message.Contains("bits a pixel", StringComparison.Ordinal), error?.Message);
            return;
        }

        Assert.Contains("bits a pixel", AssertInvalid(data).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(100)]
    public void Decode_GifWithoutAColourTable_Rejected(int frames)
    {
        // ImageSharp decodes every such frame as if it were the first, each into a new screen-sized image.
        var error = AssertInvalid(HostileImages.GifWithoutColourTables(8192, 4882, frames));

        Assert.Contains("no colour table", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(100_000, 100_000)]
    [InlineData(0, 10)]
    [InlineData(int.MinValue, 1)]
    public void Decode_BmpHeaderDeclaringABadSize_InvalidArgument(int width, int height) => AssertInvalid(HostileImages.BmpHeader(width, height));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Decode_JpegWithTooManyScans_Rejected(bool hidden)
    {
        // Hidden: scan headers inside segments of a marker ImageSharp has no case for, whose bodies it parses
        // as more markers, so they are decoded though a walk by segment lengths never sees them. Every
        // start-of-scan marker in the data counts.
        Func<int, byte[]> jpeg = hidden ? HostileImages.JpegWithHiddenScans : HostileImages.JpegWithScans;
        using (var fine = _decoder.Decode(jpeg(3)))
        {
            Assert.Equal(8, fine.Width);
        }

        var error = AssertInvalid(jpeg(101));

        Assert.Contains("more than 100 scans", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("png", 5000u, 10u)]
    [InlineData("png", 0u, 10u)]
    [InlineData("jpeg", 65535, 65535)]
    [InlineData("tga", 4097, 1)]
    [InlineData("webp-lossless", 2000, 2000)]
    public void Decode_HeaderDeclaringASizeOverTheLimits_InvalidArgument(string format, uint width, uint height)
    {
        var data = format switch
        {
            "png" => HostileImages.PngDeclaring(width, height),
            "jpeg" => HostileImages.JpegDeclaring((ushort)width, (ushort)height),
            "tga" => HostileImages.TgaDeclaring((ushort)width, (ushort)height),
            _ => HostileImages.WebpLosslessDeclaring((int)width, (int)height),
        };

        AssertInvalid(data);
    }

    [Fact]
    public void Decode_AllocationOverTheLimit_InvalidArgumentNotOutOfMemory()
    {
        using var tight = new ImageDecoder(Options.Create(new ImageDecoderOptions { MaxPixels = 8_000_000, AllocationLimitMegabytes = 16 }));

        var error = Assert.Throws<SegmentationException>(() => tight.Decode(HostileImages.Encode("png", 2500, 2500)));

        Assert.Equal(SegmentationErrorKind.InvalidArgument, error.Kind);
        Assert.Contains("more memory", error.Message, StringComparison.Ordinal);
    }

    public void Dispose() => _decoder.Dispose();

    // Decodes to the size given, or (not decodes) is INVALID_ARGUMENT with the message given.
    private void AssertDecodesOrRejected(byte[] data, bool decodes, (int Width, int Height) size, string message)
    {
        if (!decodes)
        {
            Assert.Contains(message, AssertInvalid(data).Message, StringComparison.Ordinal);
            return;
        }

        using var decoded = _decoder.Decode(data);
        Assert.Equal(size, (decoded.Width, decoded.Height));
    }

    private SegmentationException AssertInvalid(byte[] data)
    {
        var error = Assert.Throws<SegmentationException>(() => _decoder.Decode(data).Dispose());
        Assert.Equal(SegmentationErrorKind.InvalidArgument, error.Kind);
        Assert.Equal("image.encoded", error.Field);
        return error;
    }

    private static string FixturesFolder => Path.Combine(RepositoryPaths.Root, "tests", "MaskFormer.Engine.Tests", "Decoding", "Fixtures");

    private static Image<Rgb24> Noise()
    {
        var random = new Random(7);
        var noise = new Image<Rgb24>(720, 540);
        noise.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                random.NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(rows.GetRowSpan(y)));
            }
        });
        return noise;
    }

    private static void AssertPixels(Image<Rgb24> expected, RgbImage decoded)
    {
        for (var y = 0; y < expected.Height; y++)
        {
            Assert.Equal(System.Runtime.InteropServices.MemoryMarshal.AsBytes(expected.DangerousGetPixelRowMemory(y).Span).ToArray(), decoded.Row(y).ToArray());
        }
    }
}
