using MaskFormer.Engine.Decoding;

namespace MaskFormer.Engine;

/// <summary>An image as it arrives: encoded bytes, or a raw frame with its layout.</summary>
public sealed record ImageSource
{
    private ImageSource(ReadOnlyMemory<byte> data, RawFrameLayout? layout)
    {
        Data = data;
        RawLayout = layout;
    }

    /// <summary>The bytes.</summary>
    public ReadOnlyMemory<byte> Data { get; }

    /// <summary>The raw frame's layout, or null for an encoded image.</summary>
    public RawFrameLayout? RawLayout { get; }

    /// <summary>An encoded image (PNG, JPEG, ...).</summary>
    public static ImageSource Encoded(ReadOnlyMemory<byte> data) => new(data, null);

    /// <summary>A raw frame.</summary>
    public static ImageSource Raw(ReadOnlyMemory<byte> data, RawFrameLayout layout) => new(data, layout);
}
