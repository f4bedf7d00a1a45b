namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// One axis of each tile cut into blocks for bounds finer than the tile's: runs of output pixels that
/// blend the same two resized-grid points, at most <see cref="MaximumPixels"/> long. Within a block an
/// output is <c>(1 − w)·g[GridLower] + w·g[GridLower + 1]</c> along this axis with w in
/// <c>[WeightLow, WeightHigh]</c>; the bilinear value is affine in each axis's weight, so over a block
/// of rows × columns it is bounded by its four values at those weight ends.
/// </summary>
internal sealed class BlockAxis
{
    // Short enough that a block on a segment boundary keeps few pixels open, long enough that its bound
    // costs less than its pixels.
    public const int MaximumPixels = 4;

    public BlockAxis(ComposedAxis axis, TileAxis tiles)
    {
        var starts = new List<int>();
        var gridLower = new List<int>();
        var weightLow = new List<float>();
        var weightHigh = new List<float>();
        TileFirst = new int[tiles.Count + 1];
        var lower = axis.ResizedLower;
        var weights = axis.ResizedWeights;
        for (var t = 0; t < tiles.Count; t++)
        {
            TileFirst[t] = starts.Count;
            var x = tiles.Starts[t];
            while (x < tiles.Starts[t + 1])
            {
                var start = x;
                var (low, high) = (weights[x], weights[x]);
                for (x++; x < tiles.Starts[t + 1] && lower[x] == lower[start] && x - start < MaximumPixels; x++)
                {
                    (low, high) = (MathF.Min(low, weights[x]), MathF.Max(high, weights[x]));
                }

                starts.Add(start);
                gridLower.Add(lower[start]);
                weightLow.Add(low);
                weightHigh.Add(high);
            }
        }

        TileFirst[tiles.Count] = starts.Count;
        starts.Add(axis.OutputSize);
        Starts = [.. starts];
        GridLower = [.. gridLower];
        WeightLow = [.. weightLow];
        WeightHigh = [.. weightHigh];
        GridLast = axis.ResizedSize - 1;
    }

    /// <summary>Block b covers output pixels [Starts[b], Starts[b + 1]).</summary>
    public int[] Starts { get; }

    /// <summary>Tile t's blocks are [TileFirst[t], TileFirst[t + 1]).</summary>
    public int[] TileFirst { get; }

    /// <summary>The resized-grid point below a block's pixels; the one above is the next, clamped at <see cref="GridLast"/>.</summary>
    public int[] GridLower { get; }

    public int GridLast { get; }

    /// <summary>Smallest weight of the upper grid point over a block's pixels.</summary>
    public float[] WeightLow { get; }

    /// <summary>Largest weight of the upper grid point over a block's pixels.</summary>
    public float[] WeightHigh { get; }

    public int BlockCount(int tile) => TileFirst[tile + 1] - TileFirst[tile];
}
