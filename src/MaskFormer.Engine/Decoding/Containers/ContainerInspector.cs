namespace MaskFormer.Engine.Decoding.Containers;

/// <summary>
/// Walks an encoded image's container before ImageSharp sees it: every frame's or page's declared size
/// is checked against the limits (ImageSharp's Identify reports only the first), data cut short is
/// rejected (ImageSharp 2.1 fills missing rows of PNG, JPEG, BMP, GIF and lossy WebP with black), and
/// the EXIF orientation is read. Formats without a signature (TGA) pass through to ImageSharp.
/// </summary>
internal static class ContainerInspector
{
    public const string Field = "image.encoded";

    public static ExifOrientation Inspect(ReadOnlySpan<byte> data, SizeLimits limits) => Inspect(data, limits, out _);

    /// <summary>
    /// As <see cref="Inspect(ReadOnlySpan{byte}, SizeLimits)"/>; <paramref name="imageLength"/> is how many of
    /// the bytes are the image (a WebP's RIFF ends before bytes that libwebp ignores and ImageSharp would read).
    /// </summary>
    public static ExifOrientation Inspect(ReadOnlySpan<byte> data, SizeLimits limits, out int imageLength)
    {
        imageLength = data.Length;
        if (WebpContainer.Matches(data))
        {
            return WebpContainer.Inspect(data, limits, out imageLength);
        }

        if (PngContainer.Matches(data))
        {
            return PngContainer.Inspect(data, limits);
        }

        if (JpegContainer.Matches(data))
        {
            return JpegContainer.Inspect(data, limits);
        }

        if (GifContainer.Matches(data))
        {
            GifContainer.Inspect(data, limits);
            return ExifOrientation.TopLeft;
        }

        if (TiffStructure.Matches(data))
        {
            return TiffStructure.InspectTiff(data, limits);
        }

        if (BmpContainer.Matches(data))
        {
            BmpContainer.Inspect(data, limits);
        }

        return ExifOrientation.TopLeft;
    }

    public static SegmentationException Truncated(string format, string detail) =>
        SegmentationException.Invalid(Field, $"The {format} image is truncated or corrupt: {detail}.");
}
