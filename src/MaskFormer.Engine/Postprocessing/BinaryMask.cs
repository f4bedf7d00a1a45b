using System.Buffers;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>A binary mask at the original image size, one byte a pixel (0 or 1), pooled.</summary>
public sealed class BinaryMask : IDisposable
{
    private byte[]? _pixels;

    /// <summary>Allocates a cleared mask.</summary>
    public BinaryMask(int width, int height)
    {
        Width = width;
        Height = height;
        _pixels = EngineArrayPool<byte>.Shared.Rent(width * height);
        Pixels.Clear();
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>Row-major pixels, 1 inside the mask.</summary>
    public Span<byte> Pixels => (_pixels ?? throw new ObjectDisposedException(nameof(BinaryMask))).AsSpan(0, Width * Height);

    /// <summary>One row.</summary>
    public Span<byte> Row(int y) => Pixels.Slice(y * Width, Width);

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
