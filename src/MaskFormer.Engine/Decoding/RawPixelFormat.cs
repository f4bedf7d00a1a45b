namespace MaskFormer.Engine.Decoding;

/// <summary>The layouts a raw frame may come in; 8 bits per channel.</summary>
public enum RawPixelFormat
{
    /// <summary>Red, green, blue.</summary>
    Rgb24,

    /// <summary>Blue, green, red.</summary>
    Bgr24,

    /// <summary>Red, green, blue, alpha (ignored).</summary>
    Rgba32,

    /// <summary>Luminance only.</summary>
    Gray8,
}

/// <summary>Describes a raw frame's pixels.</summary>
/// <param name="Width">Width in pixels.</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="Stride">Bytes per row; 0 for tightly packed.</param>
/// <param name="Format">The pixel layout.</param>
public readonly record struct RawFrameLayout(int Width, int Height, int Stride, RawPixelFormat Format)
{
    /// <summary>Bytes per pixel for <see cref="Format"/>.</summary>
    public int BytesPerPixel => Format switch
    {
        RawPixelFormat.Rgba32 => 4,
        RawPixelFormat.Gray8 => 1,
        _ => 3,
    };
}
