using Google.Protobuf;
using MaskFormer.Contracts.V1;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Cli.Tests.Rendering;

/// <summary>Small synthetic images and results for the rendering tests.</summary>
internal static class TestPictures
{
    /// <summary>A gradient, so every pixel differs and a wrong source pixel shows.</summary>
    public static Image<Rgb24> Gradient(int width, int height, int seed = 0)
    {
        var image = new Image<Rgb24>(width, height);
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                image[x, y] = new Rgb24((byte)((x * 6) + seed), (byte)(y * 8), (byte)((x + y) * 3));
            }
        }

        return image;
    }

    /// <summary>A semantic result whose label map is <paramref name="labels"/> (8-bit PNG).</summary>
    public static SegmentResponse Semantic(byte[] labels, int width, int height)
    {
        using var map = SixLabors.ImageSharp.Image.LoadPixelData<L8>(labels, width, height);
        using var png = new MemoryStream();
        map.SaveAsPng(png);
        return new SegmentResponse
        {
            Width = (uint)width,
            Height = (uint)height,
            Semantic = new SemanticResult
            {
                LabelMap = new LabelMap { Width = (uint)width, Height = (uint)height, BitsPerPixel = 8, Data = ByteString.CopyFrom(png.ToArray()) },
            },
        };
    }

    /// <summary>A 1-byte-per-pixel label map: class 1 left of <paramref name="split"/>, class 2 right.</summary>
    public static byte[] TwoClasses(int width, int height, int split)
    {
        var labels = new byte[width * height];
        for (var i = 0; i < labels.Length; i++)
        {
            labels[i] = (byte)(i % width < split ? 1 : 2);
        }

        return labels;
    }
}
