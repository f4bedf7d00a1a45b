using System.Collections.Concurrent;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// One axis's upsampling map (<see cref="ComposedAxis"/>) with its tiles and blocks. They depend on the four
/// sizes alone and are never written after they are built, so they are built once per size and shared by
/// every image of that size (a stream's frames, a camera's pictures) instead of once per image: at
/// 1920x1080 on the tiny model that building was about 4 % of post-processing's CPU.
/// </summary>
internal sealed class AxisGeometry
{
    // A server sees a few sizes again and again; one that sees many distinct sizes starts the cache over
    // rather than growing it (an entry of a 4,000-pixel axis holds about 350 KB).
    private const int Capacity = 32;

    private static readonly ConcurrentDictionary<(int Mask, int Padded, int Resized, int Original), AxisGeometry> s_cache = new();

    static AxisGeometry() => EngineArrayPool.Register(s_cache.Clear);

    private AxisGeometry(int maskSize, int paddedSize, int resizedSize, int originalSize)
    {
        Axis = new ComposedAxis(maskSize, paddedSize, resizedSize, originalSize);
        Tiles = new TileAxis(Axis);
        Blocks = new BlockAxis(Axis, Tiles);
    }

    public ComposedAxis Axis { get; }

    public TileAxis Tiles { get; }

    public BlockAxis Blocks { get; }

    /// <summary>The geometry of an axis from <paramref name="maskSize"/> mask cells through the padded and resized input to <paramref name="originalSize"/> output pixels.</summary>
    public static AxisGeometry For(int maskSize, int paddedSize, int resizedSize, int originalSize)
    {
        var key = (maskSize, paddedSize, resizedSize, originalSize);
        if (s_cache.TryGetValue(key, out var geometry))
        {
            return geometry;
        }

        geometry = new AxisGeometry(maskSize, paddedSize, resizedSize, originalSize);
        if (s_cache.Count >= Capacity)
        {
            s_cache.Clear();
        }

        return s_cache.GetOrAdd(key, geometry);
    }
}
