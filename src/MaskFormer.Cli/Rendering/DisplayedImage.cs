using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace MaskFormer.Cli.Rendering;

/// <summary>
/// Loads an encoded image the way it is displayed: with its EXIF orientation applied, as the server
/// does before inference, so results and pixels line up.
/// </summary>
internal static class DisplayedImage
{
    public static Image<Rgb24> Load(ReadOnlySpan<byte> encoded)
    {
        var image = Image.Load<Rgb24>(encoded);
        image.Mutate(context => context.AutoOrient());
        return image;
    }
}
