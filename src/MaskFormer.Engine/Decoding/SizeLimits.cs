namespace MaskFormer.Engine.Decoding;

/// <summary>The largest image accepted, checked against every size an image declares before anything is allocated for it.</summary>
internal readonly record struct SizeLimits(int MaxDimension, long MaxPixels)
{
    public static SizeLimits From(ImageDecoderOptions options) => new(options.MaxDimension, options.MaxPixels);

    // "what" names what declared the size, for the message ("The image", "Page 3 of the TIFF image").
    public void Check(long width, long height, string field, string what = "The image")
    {
        if (width < 1 || height < 1)
        {
            throw SegmentationException.Invalid(field, $"{what} is {width}x{height}; both sides must be at least 1 pixel.");
        }

        if (width > MaxDimension || height > MaxDimension || width * height > MaxPixels)
        {
            throw SegmentationException.Invalid(field, $"{what} is {width}x{height}; the limit is {MaxDimension} pixels a side and {MaxPixels} pixels in all.");
        }
    }
}
