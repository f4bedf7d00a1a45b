using System.Buffers.Binary;
using Google.Protobuf;
using Grpc.Core;
using MaskFormer.Contracts.V1;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;

namespace MaskFormer.Server.Tests.BadInputs;

/// <summary>Every bad input RELIABILITY.md lists, with the status the server answers; each one is a test over gRPC.</summary>
public static class BadInputCatalogue
{
    private const string Encoded = "image.encoded";
    private const StatusCode Invalid = StatusCode.InvalidArgument;

    public static IReadOnlyList<BadInput> All { get; } = [.. Images(), .. Sizes(), .. Accepted(), .. Raw(), .. Options(), .. Models(), .. Streams()];

    private static IEnumerable<BadInput> Images()
    {
        yield return Bytes("empty-image", "image.encoded with no bytes", []);
        yield return new("no-image", "neither image.encoded nor image.raw set", Invalid, "image") { Request = () => new SegmentRequest() };
        yield return Bytes("random-bytes", "1 KiB of random bytes", RandomBytes(1024, 1));
        yield return Bytes("zeros", "1 KiB of zeros", new byte[1024]);
        yield return Bytes("text", "a text file", "hello, this is not an image\n"u8.ToArray());
        yield return Bytes("svg", "an SVG document (not a raster format this server reads)", "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"/>"u8.ToArray());
        yield return Bytes("netpbm", "a Netpbm (PPM) image: not a documented format, not registered", HostileImages.Netpbm());
        foreach (var format in HostileImages.Formats.Append("tga-rle"))
        {
            yield return Bytes($"{format}-cut-short", $"a {format} image cut to 60% of its bytes", HostileImages.Truncate(HostileImages.Encode(format), 0.6));
        }

        yield return Bytes("png-no-iend", "a PNG missing its last 12 bytes (IEND)", HostileImages.Encode("png")[..^12]);
        yield return Bytes("jpeg-no-eoi", "a JPEG missing its end-of-image marker", HostileImages.Encode("jpeg")[..^2]);
        yield return Bytes("png-bad-crc", "a PNG whose IDAT bytes do not match the chunk's CRC", FlipInIdat(HostileImages.Encode("png")));
        yield return Bytes("png-signature-only", "the 8-byte PNG signature alone", HostileImages.Encode("png")[..8]);
        yield return Bytes("jpeg-soi-only", "a JPEG start-of-image marker alone", [0xFF, 0xD8, 0xFF]);
        yield return Bytes("gif-header-only", "a GIF header and logical screen, no image", HostileImages.Encode("gif")[..13]);
        yield return Bytes("bmp-no-pixels", "a 2x2 BMP header with no pixel data", HostileImages.BmpHeader(2, 2));
        yield return Bytes("webp-riff-only", "a RIFF/WEBP header declaring 100 bytes, with none", [.. "RIFF"u8, 100, 0, 0, 0, .. "WEBP"u8]);
        yield return Bytes("tiff-header-only", "a TIFF header whose first directory is past the end", [(byte)'I', (byte)'I', 42, 0, 8, 0, 0, 0]);
        yield return Bytes("tiff-directory-loop", "a TIFF whose second page's directory points back to the first", TiffLoop());
        yield return Bytes("tiff-strip-outside", "a TIFF whose strip lies past the end of the data", HostileImages.Tiff((64, 64))[..210]);
        yield return Bytes("jpeg-101-scans", "a JPEG with 101 scans (each progressive scan re-reads the image)", HostileImages.JpegWithScans(101));
        yield return Bytes("webp-65536-prefix-groups", "a 164 KB lossless WebP declaring 1x1 whose entropy image names 65,536 prefix-code groups (ImageSharp allocated tables for all: 1.5 GB, 6 s)", HostileImages.WebpLosslessNamingGroups(65536));
        yield return Bytes("webp-256x256-4096-prefix-groups", "a 10 KB 256x256 lossless WebP naming 4,096 prefix-code groups, one per 4x4 block, with an 11-bit colour cache (ImageSharp allocated 263 MB of tables; 256 groups are accepted at this size)", HostileImages.WebpLosslessNamingGroups(4096, 256, prefixBits: 2, colourCacheBits: 11));
        yield return Bytes("webp-alpha-65536-prefix-groups", "a 1x1 lossy WebP whose losslessly compressed alpha plane names 65,536 prefix-code groups", HostileImages.WebpAlphaNamingGroups(65536));
        yield return Bytes("bmp-palette-500m", "a 58-byte BMP declaring a palette of 500 million colours (ImageSharp allocated 2 GB for it)", HostileImages.BmpDeclaringColours(500_000_000));
        yield return Bytes("bmp-array", "an OS/2 bitmap array (\"BA\") holding a BMP", HostileImages.BmpDeclaringColours(2, array: true));
        yield return Bytes("tga-rle-header-only", "an 18-byte run-length TGA header declaring 8192x4882 and no packets (ImageSharp decoded a whole image from nothing: 2-3 s)", HostileImages.TgaRunLength(8192, 4882, 0));
        yield return Bytes("jpeg-21-scans-8192x4882", "a JPEG of 21 scans whose frame declares 8192x4882 (scans times pixels over 20 times the pixel limit; 99 refinement scans took 7.7 s)", HostileImages.JpegWithScansDeclaring(21, 8192, 4882));
        yield return Bytes("tiff-96-bits-a-pixel", "an 8x8 TIFF of three 32-bit samples a pixel (12 bytes: 653 MB for an 8192x4882 page)", HostileImages.TiffWithSamples(3, 32));
        yield return Bytes("gif-no-colour-table", "a 1.4 KB GIF with no colour table: an 8192x4882 screen and 100 one-pixel frames (ImageSharp decoded each as if it were the first: 10 s)", HostileImages.GifWithoutColourTables(8192, 4882, 100));
        yield return Bytes("jpeg-101-hidden-scans", "a JPEG with 101 scans, 100 of their headers inside segments of an unknown marker (0xFFF0) that a walk by segment lengths skips and ImageSharp parses", HostileImages.JpegWithHiddenScans(101));
    }

    private static IEnumerable<BadInput> Sizes()
    {
        yield return Bytes("bmp-100000x100000", "a 54-byte BMP header declaring 100000x100000", HostileImages.BmpHeader(100_000, 100_000));
        yield return Bytes("bmp-zero-width", "a BMP declaring 0x10", HostileImages.BmpHeader(0, 10));
        yield return Bytes("bmp-min-height", "a BMP declaring a height of int.MinValue", HostileImages.BmpHeader(1, int.MinValue));
        yield return Bytes("png-100000x100000", "a PNG whose IHDR (with a valid CRC) declares 100000x100000", HostileImages.PngDeclaring(100_000, 100_000));
        yield return Bytes("png-8193x1", "a PNG one pixel wider than MaxDimension (8192)", HostileImages.PngDeclaring(8193, 1));
        yield return Bytes("png-0x10", "a PNG declaring a width of 0", HostileImages.PngDeclaring(0, 10));
        yield return Bytes("jpeg-65535x65535", "a JPEG whose frame header declares 65535x65535", HostileImages.JpegDeclaring(65535, 65535));
        yield return Bytes("tga-65535x65535", "a TGA header declaring 65535x65535", HostileImages.TgaDeclaring(65535, 65535));
        yield return Bytes("webp-16384x16384", "a lossless WebP declaring 16384x16384", HostileImages.WebpLosslessDeclaring(16384, 16384));
        yield return Bytes("gif-screen-65535x65535", "a GIF whose logical screen is 65535x65535", HostileImages.Gif(65535, 65535, (1, 1)));
        yield return Bytes("gif-first-frame-65535x65535", "a 1x1 GIF whose first frame declares 65535x65535", HostileImages.Gif(1, 1, (65535, 65535)));
        yield return Bytes("gif-second-frame-20000x20000", "a 1x1 GIF whose second frame declares 20000x20000", HostileImages.Gif(1, 1, (1, 1), (20000, 20000)));
        yield return Bytes("tiff-second-page-20000x20000", "a TIFF whose first page is 1x1 and second 20000x20000 (254 bytes)", HostileImages.Tiff((1, 1), (20000, 20000)));
        yield return Bytes("tiff-100000x1", "a TIFF page declaring 100000x1", HostileImages.Tiff((100_000, 1)));
        yield return Bytes("tiff-jpeg-strip-65000x20000", "a 16x16 JPEG-compressed TIFF whose strip's JPEG declares 65000x20000 (every JPEG-compressed TIFF is refused)", HostileImages.TiffWithStrip(16, 16, HostileImages.JpegDeclaring(16, 16, (65000, 20000))));
        yield return Bytes("tiff-jpeg-strip-at-byte-0", "a 360-byte JPEG-compressed TIFF whose strip is the TIFF itself (the fuzzer's; ImageSharp recursed until the stack overflowed and the process died)", File.ReadAllBytes(Path.Combine(RepositoryPaths.Root, "fuzz", "corpus", "tiff-jpeg-strip-at-zero"))[1..]);
        yield return Bytes("tiff-rows-per-strip-65535", "a 2000x1 TIFF declaring 65535 rows a strip (ImageSharp would allocate and clear 393 MB for it)", HostileImages.TiffWithStrip(2000, 1, new byte[6000], compression: 1, rowsPerStrip: 65535));
        yield return Bytes("tiff-exif-2000-entries", "a TIFF page whose Exif directory has 2000 entries (parsed with the page's, in quadratic time)", HostileImages.TiffWithStrip(4, 4, new byte[48], compression: 1, exifEntries: 2000));
        yield return Bytes("png-ihdr-100000x100000-then-8x8", "a PNG whose IHDR declares 100000x100000 and a second IHDR after its data 8x8 (ImageSharp 2.1 identifies the last, allocates the first)", HostileImages.PngWithSecondHeader((100_000, 100_000), (8, 8)));
        yield return Bytes("tiff-2000-entries", "a TIFF page whose directory has 2009 entries (ImageSharp parses them in quadratic time)", HostileImages.TiffWithStrip(4, 4, new byte[48], compression: 1, extraEntries: 2000));
        yield return new("message-over-limit", "a request of 64 MiB + 1 KiB (over MaxReceiveMessageSize)", StatusCode.ResourceExhausted, null)
        {
            Request = () => Encode(new byte[(64 * 1024 * 1024) + 1024]),
        };
    }

    private static IEnumerable<BadInput> Accepted()
    {
        yield return new("gif-1000-frames", "a GIF of 1000 frames: only the first is decoded", StatusCode.OK, null)
        {
            Request = () => Encode(HostileImages.Gif(64, 48, [.. Enumerable.Repeat((64, 48), 1000)])),
            Check = r => Assert.Equal((64u, 48u), (r.Width, r.Height)),
        };
        yield return new("webp-image-after-riff", "a 1x1 WebP followed, past its RIFF end, by a cut 256x256 VP8 chunk: answered as the 1x1 image (libwebp ignores what follows the RIFF; ImageSharp read it, and decoded the cut image)", StatusCode.OK, null)
        {
            Request = () => Encode(HostileImages.WebpWithImageAfterRiff()),
            Check = r => Assert.Equal((1u, 1u), (r.Width, r.Height)),
        };
        yield return new("tiff-3-pages", "a TIFF of three small pages: only the first is decoded", StatusCode.OK, null)
        {
            Request = () => Encode(HostileImages.Tiff((40, 30), (50, 50), (10, 10))),
            Check = r => Assert.Equal((40u, 30u), (r.Width, r.Height)),
        };
        yield return new("message-40mb", "a 40 MB request (a PNG with trailing bytes): over Kestrel's old 30 MB default, under the limit", StatusCode.OK, null)
        {
            Request = () => Encode([.. HostileImages.Encode("png"), .. new byte[40_000_000]]),
            Check = r => Assert.Equal((64u, 48u), (r.Width, r.Height)),
        };
        yield return new("jpeg-exif-rotated", "a 64x48 JPEG with EXIF orientation 6: answered as displayed, 48x64", StatusCode.OK, null)
        {
            Request = () => Encode(Rotated()),
            Check = r => Assert.Equal((48u, 64u), (r.Width, r.Height)),
        };
        yield return new("exif-broken", "a PNG whose eXIf block is garbage: decoded as stored", StatusCode.OK, null)
        {
            Request = () => Encode(WithPngChunk(HostileImages.Encode("png"), "eXIf"u8, [(byte)'M', (byte)'M', 0, 42, 0xFF, 0xFF, 0xFF, 0xFF])),
            Check = r => Assert.Equal((64u, 48u), (r.Width, r.Height)),
        };
    }

    private static IEnumerable<BadInput> Raw()
    {
        yield return RawCase("raw-zero-width", "a raw frame 0 pixels wide", "image.raw.width", new RawFrame { Width = 0, Height = 2, PixelFormat = PixelFormat.Rgb24, Data = Zeros(12) });
        yield return RawCase("raw-zero-height", "a raw frame 0 pixels high", "image.raw.height", new RawFrame { Width = 2, Height = 0, PixelFormat = PixelFormat.Rgb24, Data = Zeros(12) });
        yield return RawCase("raw-width-3e9", "a raw frame 3,000,000,000 pixels wide", "image.raw.width", new RawFrame { Width = 3_000_000_000, Height = 1, PixelFormat = PixelFormat.Rgb24, Data = Zeros(12) });
        yield return RawCase("raw-stride-4e9", "a raw frame whose stride is 4,000,000,000", "image.raw.stride", new RawFrame { Width = 2, Height = 2, Stride = 4_000_000_000, PixelFormat = PixelFormat.Rgb24, Data = Zeros(12) });
        yield return RawCase("raw-stride-short", "a stride smaller than one packed row", "image.raw.stride", new RawFrame { Width = 4, Height = 2, Stride = 5, PixelFormat = PixelFormat.Rgb24, Data = Zeros(24) });
        yield return RawCase("raw-data-short", "fewer bytes than the layout needs", "image.raw.data", new RawFrame { Width = 4, Height = 4, PixelFormat = PixelFormat.Rgba32, Data = Zeros(63) });
        yield return RawCase("raw-format-unspecified", "PIXEL_FORMAT_UNSPECIFIED", "image.raw.pixel_format", new RawFrame { Width = 2, Height = 2, Data = Zeros(12) });
        yield return RawCase("raw-format-99", "a pixel format this server does not know (99)", "image.raw.pixel_format", new RawFrame { Width = 2, Height = 2, PixelFormat = (PixelFormat)99, Data = Zeros(12) });
        yield return RawCase("raw-8193x1", "a raw frame one pixel wider than MaxDimension", "image.raw", new RawFrame { Width = 8193, Height = 1, PixelFormat = PixelFormat.Gray8, Data = Zeros(8193) });
        yield return RawCase("raw-8000x8000", "a raw frame over MaxPixels (64 M > 40 M), data not sent", "image.raw", new RawFrame { Width = 8000, Height = 8000, PixelFormat = PixelFormat.Gray8, Data = Zeros(16) });
    }

    private static IEnumerable<BadInput> Options()
    {
        yield return Option("object-mask-threshold-negative", "options.object_mask_threshold = -0.1", "options.object_mask_threshold", o => o.ObjectMaskThreshold = -0.1f);
        yield return Option("object-mask-threshold-1.5", "options.object_mask_threshold = 1.5", "options.object_mask_threshold", o => o.ObjectMaskThreshold = 1.5f);
        yield return Option("object-mask-threshold-nan", "options.object_mask_threshold = NaN", "options.object_mask_threshold", o => o.ObjectMaskThreshold = float.NaN);
        yield return Option("overlap-threshold-2", "options.overlap_threshold = 2", "options.overlap_threshold", o => o.OverlapThreshold = 2f);
        yield return Option("overlap-threshold-infinity", "options.overlap_threshold = +infinity", "options.overlap_threshold", o => o.OverlapThreshold = float.PositiveInfinity);
        yield return Option("instance-score-threshold-negative", "options.instance_score_threshold = -1", "options.instance_score_threshold", o => o.InstanceScoreThreshold = -1f);
        yield return Option("instance-top-k-0", "options.instance_top_k = 0", "options.instance_top_k", o => o.InstanceTopK = 0);
        yield return Option("instance-top-k-10001", "options.instance_top_k = 10001", "options.instance_top_k", o => o.InstanceTopK = 10_001);
        yield return Option("rle-format-99", "options.rle_format = 99", "options.rle_format", o => o.RleFormat = (RleFormat)99);
        yield return Option("convention-99", "options.convention = 99", "options.convention", o => o.Convention = (PostProcessingConvention)99);
        yield return Option("label-map-encoding-99", "options.label_map_encoding = 99", "options.label_map_encoding", o => o.LabelMapEncoding = (LabelMapEncoding)99);
        yield return Option("label-ids-to-fuse-999", "options.label_ids_to_fuse names label 999 of a 6-label model", "options.label_ids_to_fuse", o => o.LabelIdsToFuse.Add(999));
        yield return Option("label-ids-to-fuse-2147483648", "options.label_ids_to_fuse names label 2^31 (past int's range)", "options.label_ids_to_fuse", o => o.LabelIdsToFuse.Add(2147483648));
        yield return Option("label-ids-to-fuse-4294967295", "options.label_ids_to_fuse names label 2^32 - 1", "options.label_ids_to_fuse", o => o.LabelIdsToFuse.Add(uint.MaxValue));
        yield return new("task-99", "a task this server does not know (99)", Invalid, "tasks")
        {
            Request = () => Valid(r => r.Tasks.Add((SegmentationTask)99)),
        };
    }

    private static IEnumerable<BadInput> Models()
    {
        var huge = new string('m', 1024 * 1024);
        yield return new("model-unknown", "a model that is not served", StatusCode.NotFound, null) { Request = () => Valid(r => r.Model = "no-such-model") };
        yield return new("model-version-unknown", "a version of the served model that does not exist", StatusCode.NotFound, null) { Request = () => Valid(r => r.ModelVersion = "999") };
        yield return new("model-name-1mib", "a 1 MiB model name: NOT_FOUND, the name cut to 256 characters in the message", StatusCode.NotFound, null) { Request = () => Valid(r => r.Model = huge) };
        yield return new("model-version-1mib", "a 1 MiB model version: NOT_FOUND, cut to 256 characters", StatusCode.NotFound, null) { Request = () => Valid(r => r.ModelVersion = huge) };
        yield return new("model-name-control-chars", "a model name of control characters and invalid UTF-16", StatusCode.NotFound, null) { Request = () => Valid(r => r.Model = "\u0000\r\n\u0007\ud800x") };
    }

    private static IEnumerable<BadInput> Streams()
    {
        yield return StreamFrame("stream-png-cut-short", "a stream frame: PNG cut short; the next frame is answered", Invalid, new Image { Encoded = Bytes(HostileImages.Truncate(HostileImages.Encode("png"), 0.6)) });
        yield return StreamFrame("stream-bmp-100000x100000", "a stream frame: the BMP size bomb", Invalid, new Image { Encoded = Bytes(HostileImages.BmpHeader(100_000, 100_000)) });
        yield return StreamFrame("stream-tiff-second-page-bomb", "a stream frame: the TIFF second-page bomb", Invalid, new Image { Encoded = Bytes(HostileImages.Tiff((1, 1), (20000, 20000))) });
        yield return StreamFrame("stream-random-bytes", "a stream frame of random bytes", Invalid, new Image { Encoded = Bytes(RandomBytes(512, 2)) });
        yield return StreamFrame("stream-raw-data-short", "a stream raw frame with too few bytes", Invalid, new Image { Raw = new RawFrame { Width = 8, Height = 8, PixelFormat = PixelFormat.Rgb24, Data = Zeros(10) } });
        yield return StreamFrame("stream-no-image", "a stream frame without an image", Invalid, null);
        yield return StreamConfigCase("stream-config-overlap-2", "a stream config with overlap_threshold 2: its frames fail", Invalid, "config.options.overlap_threshold", new StreamConfig { Options = new SegmentationOptions { OverlapThreshold = 2f } });
        yield return StreamConfigCase("stream-config-policy-99", "a stream config with overload policy 99", Invalid, "config.overload_policy", new StreamConfig { OverloadPolicy = (OverloadPolicy)99 });
        yield return StreamConfigCase("stream-config-iou-0", "a stream config with tracking iou_threshold 0", Invalid, "config.tracking.iou_threshold", new StreamConfig { Tracking = new TrackingOptions { IouThreshold = 0f } });
        yield return StreamConfigCase("stream-config-class-vote-0", "a stream config with tracking class_vote_frames 0", Invalid, "config.tracking.class_vote_frames", new StreamConfig { Tracking = new TrackingOptions { ClassVoteFrames = 0 } });
        yield return StreamConfigCase("stream-config-min-instance-score-2", "a stream config with tracking min_instance_score 2", Invalid, "config.tracking.min_instance_score", new StreamConfig { Tracking = new TrackingOptions { MinInstanceScore = 2f } });
        yield return StreamConfigCase("stream-config-max-missed-2-hours", "a stream config with tracking max_missed_ms of 2 hours", Invalid, "config.tracking.max_missed_ms", new StreamConfig { Tracking = new TrackingOptions { MaxMissedMs = 7_200_000 } });
        yield return StreamConfigCase("stream-config-max-missed-frames-5000", "a stream config with tracking max_missed_frames 5000", Invalid, "config.tracking.max_missed_frames", new StreamConfig { Tracking = new TrackingOptions { MaxMissedFrames = 5000 } });
        yield return StreamConfigCase("stream-config-target-fps-nan", "a stream config with latency target_fps NaN", Invalid, "config.latency.target_fps", new StreamConfig { Latency = new LatencyContract { TargetFps = float.NaN } });
        yield return StreamConfigCase("stream-config-max-age-61s", "a stream config with latency max_age_ms 61000", Invalid, "config.latency.max_age_ms", new StreamConfig { Latency = new LatencyContract { MaxAgeMs = 61_000 } });
        yield return StreamConfigCase("stream-config-unknown-model", "a stream config naming a model that is not served", StatusCode.NotFound, null, new StreamConfig { Model = "no-such-model" });
        yield return new("stream-empty-message", "a stream message with neither config nor frame: the frames before it are answered, then the call ends", Invalid, null)
        {
            Stream = () => [GoodFrame(1), GoodFrame(2), new SegmentStreamRequest(), GoodFrame(3)],
            EndsCall = true,
        };
    }

    private static BadInput Bytes(string name, string what, byte[] data) =>
        new(name, what, Invalid, Encoded) { Request = () => Encode(data) };

    private static BadInput RawCase(string name, string what, string field, RawFrame frame) =>
        new(name, what, Invalid, field) { Request = () => new SegmentRequest { Image = new Image { Raw = frame } } };

    private static BadInput Option(string name, string what, string field, Action<SegmentationOptions> set) =>
        new(name, what, Invalid, field)
        {
            Request = () => Valid(r =>
            {
                r.Options = new SegmentationOptions();
                set(r.Options);
                r.Tasks.Add(SegmentationTask.Panoptic);
            }),
        };

    private static BadInput StreamFrame(string name, string what, StatusCode expected, Image? image) =>
        new(name, what, expected, null)
        {
            Stream = () => [new SegmentStreamRequest { Frame = new StreamFrame { FrameId = 1, Image = image } }, GoodFrame(2)],
        };

    private static BadInput StreamConfigCase(string name, string what, StatusCode expected, string? field, StreamConfig config) =>
        new(name, what, expected, field)
        {
            Stream = () => [new SegmentStreamRequest { Config = config }, GoodFrame(1), new SegmentStreamRequest { Config = new StreamConfig() }, GoodFrame(2)],
        };

    private static SegmentStreamRequest GoodFrame(ulong id) =>
        new() { Frame = new StreamFrame { FrameId = id, Image = new Image { Encoded = Bytes(HostileImages.Encode("png")) } } };

    private static SegmentRequest Valid(Action<SegmentRequest> change)
    {
        var request = Encode(HostileImages.Encode("png"));
        change(request);
        return request;
    }

    private static SegmentRequest Encode(byte[] data) => new() { Image = new Image { Encoded = Bytes(data) } };

    private static ByteString Bytes(byte[] data) => UnsafeByteOperations.UnsafeWrap(data);

    private static ByteString Zeros(int count) => ByteString.CopyFrom(new byte[count]);

    private static byte[] RandomBytes(int count, int seed)
    {
        var data = new byte[count];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static byte[] FlipInIdat(byte[] png)
    {
        var copy = png.ToArray();
        copy[copy.AsSpan().IndexOf("IDAT"u8) + 8] ^= 0x5A;
        return copy;
    }

    private static byte[] TiffLoop()
    {
        var data = HostileImages.Tiff((2, 2), (2, 2));
        var secondNextAt = data.Length - 4 - 4;
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(secondNextAt), 8);
        return data;
    }

    private static byte[] Rotated()
    {
        using var image = HostileImages.Pattern();
        image.Metadata.ExifProfile = new ExifProfile();
        image.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)6);
        return HostileImages.Encode(image, "jpeg");
    }

    private static byte[] WithPngChunk(byte[] png, ReadOnlySpan<byte> type, byte[] body)
    {
        var chunk = new byte[12 + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)body.Length);
        type.CopyTo(chunk.AsSpan(4));
        body.CopyTo(chunk, 8);
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + body.Length), HostileImages.Crc32(chunk.AsSpan(4, 4 + body.Length)));
        return [.. png[..33], .. chunk, .. png[33..]];
    }
}
