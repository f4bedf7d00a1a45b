using System.Buffers;

namespace MaskFormer.Engine.Decoding;

/// <summary>
/// A decoded image as tightly packed RGB24 rows in a pooled buffer. Dispose to return the buffer.
/// </summary>
public sealed class RgbImage : IDisposable
{
    private byte[]? _pixels;

    private RgbImage(int width, int height)
    {
        Width = width;
        Height = height;
        _pixels = EngineArrayPool<byte>.Shared.Rent(checked(width * height * 3));
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>The pixels: R, G, B for each pixel, row by row.</summary>
    public Span<byte> Pixels => _pixels.AsSpan(0, Width * Height * 3);

    /// <summary>The read-only pixels.</summary>
    public ReadOnlySpan<byte> ReadOnlyPixels => _pixels.AsSpan(0, Width * Height * 3);

    /// <summary>One row of pixels.</summary>
    public Span<byte> Row(int y) => _pixels.AsSpan(y * Width * 3, Width * 3);

    /// <summary>Allocates an image from the pool; its pixels are not cleared.</summary>
    public static RgbImage Create(int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        return new RgbImage(width, height);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        var pixels = Interlocked.Exchange(ref _pixels, null);
        if (pixels is not null)
        {
            EngineArrayPool<byte>.Shared.Return(pixels);
        }
    }
}
