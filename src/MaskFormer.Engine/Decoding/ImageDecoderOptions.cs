namespace MaskFormer.Engine.Decoding;

/// <summary>Limits on incoming images and on the decoder's memory, so one request cannot exhaust memory.</summary>
public sealed class ImageDecoderOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "MaskFormer:Images";

    /// <summary>Bytes per pixel the allocation limit must leave room for: 16-bit RGBA, the widest pixel a decoder works in.</summary>
    public const int WidestPixelBytes = 8;

    /// <summary>Largest accepted width or height in pixels, of every frame or page an image declares. Default 8192.</summary>
    public int MaxDimension { get; set; } = 8192;

    /// <summary>Largest accepted width × height. Default 40 megapixels.</summary>
    public long MaxPixels { get; set; } = 40_000_000;

    /// <summary>
    /// Largest single buffer the image decoder may allocate, in MiB; a file whose decoding would need more
    /// is rejected. At least <see cref="MaxPixels"/> × <see cref="WidestPixelBytes"/> bytes. Default 512.
    /// </summary>
    public int AllocationLimitMegabytes { get; set; } = 512;

    /// <summary>Most memory, in MiB, the image decoder keeps pooled between requests. Default 64.</summary>
    public int PoolMegabytes { get; set; } = 64;

    /// <summary>After this long with no image being decoded, the decoder's pooled memory is released. Default 30 s.</summary>
    public TimeSpan IdleTrimAfter { get; set; } = TimeSpan.FromSeconds(30);
}
