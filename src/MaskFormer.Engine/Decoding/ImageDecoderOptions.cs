namespace MaskFormer.Engine.Decoding;

/// <summary>Limits on incoming images, so one request cannot exhaust memory.</summary>
public sealed class ImageDecoderOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "MaskFormer:Images";

    /// <summary>Largest accepted width or height in pixels. Default 8192.</summary>
    public int MaxDimension { get; set; } = 8192;

    /// <summary>Largest accepted width × height. Default 40 megapixels.</summary>
    public long MaxPixels { get; set; } = 40_000_000;
}
