using MaskFormer.Engine.Decoding;
using Microsoft.Extensions.Options;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tga;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Engine.Tests.Decoding;

public sealed class ImageDecoderTests : IDisposable
{
    private readonly ImageDecoder _decoder = new(Options.Create(new ImageDecoderOptions { MaxDimension = 4096, MaxPixels = 1_000_000 }));

    public static TheoryData<string, bool> Formats => new()
    {
        { "png", true },
        { "bmp", true },
        { "tga", true },
        { "tiff", true },
        { "webp-lossless", true },
        { "jpeg", false },
        { "gif", false },
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public void Decode_EveryAdvertisedFormat_GivesTheImage(string format, bool lossless)
    {
        using var source = SixLabors.ImageSharp.Image.Load<Rgb24>(Path.Combine(RepositoryPaths.HeldOut, "0000.png"));
        using var stream = new MemoryStream();
        source.Save(stream, Encoder(format));

        using var decoded = _decoder.Decode(stream.ToArray());

        Assert.Equal((source.Width, source.Height), (decoded.Width, decoded.Height));
        var (worst, total) = (0, 0L);
        for (var y = 0; y < source.Height; y++)
        {
            for (var x = 0; x < source.Width; x++)
            {
                var expected = source[x, y];
                var at = ((y * source.Width) + x) * 3;
                foreach (var difference in new[] { expected.R - decoded.Pixels[at], expected.G - decoded.Pixels[at + 1], expected.B - decoded.Pixels[at + 2] })
                {
                    worst = Math.Max(worst, Math.Abs(difference));
                    total += Math.Abs(difference);
                }
            }
        }

        // Lossless formats give the pixels back exactly; JPEG and GIF (a 256-colour palette) approximately.
        var mean = total / (3.0 * source.Width * source.Height);
        Assert.True(lossless ? worst == 0 : mean < 12, $"{format}: largest channel difference {worst}, mean {mean:F2}");
    }

    [Fact]
    public void FromRaw_Gray8WithPaddedStride_ReplicatesLuminance()
    {
        byte[] data = [10, 20, 0, 0, 30, 40, 0, 0];

        using var image = _decoder.FromRaw(data, new RawFrameLayout(2, 2, 4, RawPixelFormat.Gray8));

        Assert.Equal(new byte[] { 10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40 }, image.Pixels.ToArray());
    }

    [Theory]
    [InlineData(4, 2, 5, RawPixelFormat.Rgb24, "stride")]
    [InlineData(4, 2, 0, RawPixelFormat.Rgba32, "needs 32")]
    [InlineData(5000, 1, 0, RawPixelFormat.Gray8, "limit")]
    public void FromRaw_InconsistentLayout_InvalidArgument(int width, int height, int stride, RawPixelFormat format, string mentioned)
    {
        var error = Assert.Throws<SegmentationException>(() => _decoder.FromRaw(new byte[20], new RawFrameLayout(width, height, stride, format)));

        Assert.Equal(SegmentationErrorKind.InvalidArgument, error.Kind);
        Assert.Contains(mentioned, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_ImageOverThePixelLimit_RejectedBeforeDecoding()
    {
        using var large = new Image<Rgb24>(1200, 1000);
        using var stream = new MemoryStream();
        large.SaveAsPng(stream);

        var error = Assert.Throws<SegmentationException>(() => _decoder.Decode(stream.ToArray()));

        Assert.Equal(SegmentationErrorKind.InvalidArgument, error.Kind);
        Assert.Contains("1200x1000", error.Message, StringComparison.Ordinal);
    }

    public void Dispose() => _decoder.Dispose();

    private static IImageEncoder Encoder(string format) => format switch
    {
        "png" => new PngEncoder(),
        "bmp" => new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 },
        "tga" => new TgaEncoder { BitsPerPixel = TgaBitsPerPixel.Pixel24, Compression = TgaCompression.None },
        "tiff" => new TiffEncoder(),
        "webp-lossless" => new WebpEncoder { FileFormat = WebpFileFormatType.Lossless },
        "jpeg" => new JpegEncoder { Quality = 90 },
        _ => new GifEncoder(),
    };
}
