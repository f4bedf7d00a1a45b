using MaskFormer.Engine.Decoding;
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

namespace MaskFormer.Engine.Hosting;

/// <summary>
/// Synthetic pictures for the warm-up: flat shapes on a gradient, so post-processing finds segments to
/// encode, in every encoded format the decoder reads and every raw layout.
/// </summary>
internal static class WarmUpImages
{
    private static readonly (string Name, IImageEncoder Encoder)[] s_encoders =
    [
        ("png", new PngEncoder()),
        ("jpeg", new JpegEncoder()),
        ("bmp", new BmpEncoder()),
        ("gif", new GifEncoder()),
        ("tga", new TgaEncoder()),
        ("tiff", new TiffEncoder()),
        ("webp", new WebpEncoder()),
    ];

    /// <summary>The picture in every encoded format and every raw pixel format.</summary>
    public static IEnumerable<(string Name, ImageSource Source)> AllSources(int width, int height)
    {
        using var image = Draw(width, height);
        var sources = new List<(string, ImageSource)>();
        foreach (var (name, encoder) in s_encoders)
        {
            using var stream = new MemoryStream();
            image.Save(stream, encoder);
            sources.Add((name, ImageSource.Encoded(stream.ToArray())));
        }

        foreach (var format in Enum.GetValues<RawPixelFormat>())
        {
            sources.Add(($"raw {format}", Raw(image, format)));
        }

        return sources;
    }

    /// <summary>The picture as a PNG.</summary>
    public static ImageSource Png(int width, int height)
    {
        using var image = Draw(width, height);
        using var stream = new MemoryStream();
        image.SaveAsPng(stream);
        return ImageSource.Encoded(stream.ToArray());
    }

    private static Image<Rgb24> Draw(int width, int height)
    {
        var image = new Image<Rgb24>(width, height);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    row[x] = Shade(x, y, width, height);
                }
            }
        });
        return image;
    }

    private static Rgb24 Shade(int x, int y, int width, int height)
    {
        var dx = x - (width / 4);
        var dy = y - (height / 2);
        var radius = Math.Min(width, height) / 5;
        if ((dx * dx) + (dy * dy) < radius * radius)
        {
            return new Rgb24(220, 40, 40);
        }

        if (x > width / 2 && x < width * 7 / 8 && y > height / 4 && y < height * 3 / 4)
        {
            return new Rgb24(40, 60, 220);
        }

        return new Rgb24((byte)(x * 255 / width), (byte)(y * 255 / height), 128);
    }

    private static ImageSource Raw(Image<Rgb24> image, RawPixelFormat format)
    {
        var channels = format switch
        {
            RawPixelFormat.Gray8 => 1,
            RawPixelFormat.Rgba32 => 4,
            _ => 3,
        };
        var stride = (image.Width * channels) + 8;
        var data = new byte[stride * image.Height];
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                var target = data.AsSpan(y * stride, image.Width * channels);
                for (var x = 0; x < row.Length; x++)
                {
                    var p = row[x];
                    switch (format)
                    {
                        case RawPixelFormat.Gray8:
                            target[x] = (byte)((p.R + p.G + p.B) / 3);
                            break;
                        case RawPixelFormat.Bgr24:
                            (target[3 * x], target[(3 * x) + 1], target[(3 * x) + 2]) = (p.B, p.G, p.R);
                            break;
                        case RawPixelFormat.Rgba32:
                            (target[4 * x], target[(4 * x) + 1], target[(4 * x) + 2], target[(4 * x) + 3]) = (p.R, p.G, p.B, 255);
                            break;
                        default:
                            (target[3 * x], target[(3 * x) + 1], target[(3 * x) + 2]) = (p.R, p.G, p.B);
                            break;
                    }
                }
            }
        });
        return ImageSource.Raw(data, new RawFrameLayout(image.Width, image.Height, stride, format));
    }
}
