using System.Buffers;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>A per-pixel map of 16-bit ids (labels or segment ids) in a pooled buffer.</summary>
public sealed class LabelMap : IDisposable
{
    private ushort[]? _values;

    /// <summary>Allocates a cleared map.</summary>
    public LabelMap(int width, int height)
        : this(width, height, clear: true)
    {
    }

    /// <summary>
    /// Allocates a map; unless <paramref name="clear"/>, its ids are what the pooled buffer held before, for a
    /// caller that writes every pixel (a 1920x1080 map is 4 MB to clear).
    /// </summary>
    internal LabelMap(int width, int height, bool clear)
    {
        Width = width;
        Height = height;
        _values = EngineArrayPool<ushort>.Shared.Rent(width * height);
        if (clear)
        {
            Values.Clear();
        }
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>The ids, row by row.</summary>
    public Span<ushort> Values => (_values ?? throw new ObjectDisposedException(nameof(LabelMap))).AsSpan(0, Width * Height);

    /// <summary>One row.</summary>
    public Span<ushort> Row(int y) => Values.Slice(y * Width, Width);

    /// <inheritdoc />
    public void Dispose()
    {
        var values = Interlocked.Exchange(ref _values, null);
        if (values is not null)
        {
            EngineArrayPool<ushort>.Shared.Return(values);
        }
    }
}
