namespace MaskFormer.Engine.Decoding;

/// <summary>
/// An image whose header has been read and checked, not yet decoded: its declared size (as stored,
/// before the EXIF orientation turns it), which admission control weighs it by.
/// </summary>
public sealed class ProbedImage
{
    internal ProbedImage(ImageSource source, int width, int height, ExifOrientation orientation, int? encodedLength = null)
    {
        Source = source;
        EncodedLength = encodedLength ?? source.Data.Length;
        Width = width;
        Height = height;
        Orientation = orientation;
    }

    /// <summary>The stored width.</summary>
    public int Width { get; }

    /// <summary>The stored height.</summary>
    public int Height { get; }

    /// <summary>Width × height.</summary>
    public long Pixels => (long)Width * Height;

    internal ImageSource Source { get; }

    internal ExifOrientation Orientation { get; }

    /// <summary>How many of the encoded bytes are the image (the container walk's reading); the rest is not decoded.</summary>
    internal int EncodedLength { get; }
}
