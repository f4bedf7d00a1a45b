using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Postprocessing;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Engine.Tests.Encoding;

public sealed class PanopticPngEncoderTests
{
    [Fact]
    public void Encode_IdsAcrossByteBoundaries_DecodeAsRPlus256GPlus65536B()
    {
        ushort[] ids = [0, 1, 2, 255, 256, 257, 511, 4660, 65280, 65534, 65535, 300];
        using var map = new LabelMap(4, 3);
        ids.CopyTo(map.Values);

        var png = PanopticPngEncoder.Encode(map);

        using var image = Image.Load<Rgb24>(png);
        Assert.Equal((4, 3), (image.Width, image.Height));
        for (var i = 0; i < ids.Length; i++)
        {
            var pixel = image[i % 4, i / 4];
            Assert.Equal(ids[i], pixel.R + (256 * pixel.G) + (65536 * pixel.B));
        }
    }

    [Fact]
    public void Encode_AnyMap_IsAnEightBitRgbPng()
    {
        using var map = new LabelMap(5, 2);
        map.Values.Fill(1234);

        var png = PanopticPngEncoder.Encode(map);

        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        using var image = Image.Load(png);
        var metadata = image.Metadata.GetPngMetadata();
        Assert.Equal((PngColorType.Rgb, PngBitDepth.Bit8), (metadata.ColorType, metadata.BitDepth));
    }

    [Fact]
    public void Encode_RandomMap_RoundTripsEveryId()
    {
        var random = new Random(7);
        using var map = new LabelMap(37, 23);
        for (var i = 0; i < map.Values.Length; i++)
        {
            map.Values[i] = (ushort)random.Next(0, 65536);
        }

        using var image = Image.Load<Rgb24>(PanopticPngEncoder.Encode(map));

        for (var y = 0; y < map.Height; y++)
        {
            for (var x = 0; x < map.Width; x++)
            {
                var pixel = image[x, y];
                Assert.Equal(map.Row(y)[x], pixel.R + (256 * pixel.G) + (65536 * pixel.B));
            }
        }
    }
}
