namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// One axis of the tiling: runs of consecutive output pixels that blend between the same resized-grid
/// points, joined until a tile is at least <see cref="MinimumPixels"/> wide. Every output pixel of a
/// tile interpolates grid points <c>[GridStart, GridEnd]</c> only.
/// </summary>
internal sealed class TileAxis
{
    // Below this a tile's bound costs about as much as its pixels.
    public const int MinimumPixels = 8;

    public TileAxis(ComposedAxis axis)
    {
        var starts = new List<int>();
        var gridStarts = new List<int>();
        var gridEnds = new List<int>();
        var lower = axis.ResizedLower;
        var size = axis.OutputSize;
        var x = 0;
        while (x < size)
        {
            var start = x;
            do
            {
                var run = lower[x];
                while (x < size && lower[x] == run)
                {
                    x++;
                }
            }
            while (x < size && x - start < MinimumPixels);

            starts.Add(start);
            gridStarts.Add(lower[start]);
            gridEnds.Add(Math.Min(lower[x - 1] + 1, axis.ResizedSize - 1));
        }

        starts.Add(size);
        Starts = [.. starts];
        GridStarts = [.. gridStarts];
        GridEnds = [.. gridEnds];
    }

    /// <summary>Number of tiles.</summary>
    public int Count => GridStarts.Length;

    /// <summary>Tile t covers output pixels [Starts[t], Starts[t + 1]).</summary>
    public int[] Starts { get; }

    /// <summary>First resized-grid point a tile's pixels blend.</summary>
    public int[] GridStarts { get; }

    /// <summary>Last resized-grid point a tile's pixels blend.</summary>
    public int[] GridEnds { get; }

    public int Length(int tile) => Starts[tile + 1] - Starts[tile];
}
