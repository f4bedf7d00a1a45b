using MaskFormer.Cli.Rendering;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Cli.Tests.Rendering;

public sealed class DisplayedImageTests
{
    [Fact]
    public void Load_JpegRotatedByExif_IsTheDisplayedOrientation()
    {
        var jpeg = RotatedJpeg(40, 20);

        using var image = DisplayedImage.Load(jpeg);

        Assert.Equal((20, 40), (image.Width, image.Height));
    }

    /// <summary>A width × height JPEG whose EXIF says "rotate 90° clockwise to display" (orientation 6).</summary>
    internal static byte[] RotatedJpeg(int width, int height)
    {
        using var image = TestPictures.Gradient(width, height);
        image.Metadata.ExifProfile = new ExifProfile();
        image.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)6);
        using var stream = new MemoryStream();
        image.SaveAsJpeg(stream);
        return stream.ToArray();
    }
}
