using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

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

    // Eight tiles take their extremes together by vector shuffles when each spans at most this many
    // grid intervals and the eight start within this many vectors of grid points (three: where an axis
    // upsamples 3-4 times, as 512 grid points to 1920 pixels, eight tiles span about 19 points).
    private const int MaximumVectorExtent = 14;
    private const int MaximumWindowVectors = 3;
    private const int Lanes = 8;

    // Per block of eight tiles: the grid point its window starts at (-1: tile by tile), the vectors
    // the window holds, the level (extremes over 2^level grid points) its tiles read; per tile, the
    // two points of that level that cover its grid points, less the window's start; the highest
    // level a window reads (-1: none has a window).
    private readonly int[] _windows;
    private readonly int[] _windowVectors;
    private readonly int[] _windowLevels;
    private readonly int[] _firstOffsets;
    private readonly int[] _secondOffsets;
    private readonly int _levels;

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
        GridSize = axis.ResizedSize;
        (_windows, _windowVectors, _windowLevels, _firstOffsets, _secondOffsets, _levels) = FindWindows();
    }

    /// <summary>Number of tiles.</summary>
    public int Count => GridStarts.Length;

    /// <summary>Tile t covers output pixels [Starts[t], Starts[t + 1]).</summary>
    public int[] Starts { get; }

    /// <summary>First resized-grid point a tile's pixels blend.</summary>
    public int[] GridStarts { get; }

    /// <summary>Last resized-grid point a tile's pixels blend.</summary>
    public int[] GridEnds { get; }

    /// <summary>Resized-grid points along the axis.</summary>
    public int GridSize { get; }

    /// <summary>Floats of scratch <see cref="Extremes{TMin, TMax}"/> needs.</summary>
    public int ScratchLength => 2 * (_levels + 1) * LevelStride;

    // Each level is padded so that a window's loads stay inside it (lanes past the row are dropped).
    private int LevelStride => GridSize + (MaximumWindowVectors * Lanes);

    public int Length(int tile) => Starts[tile + 1] - Starts[tile];

    /// <summary>The grid intervals a tile spans (GridEnds − GridStarts), on average.</summary>
    public double MeanGridExtent => (GridEnds.Sum() - (double)GridStarts.Sum()) / Count;

    /// <summary>
    /// The smallest of <paramref name="lowValues"/> and the largest of <paramref name="highValues"/>
    /// (rows along the resized grid) over each tile's grid points, as a plain loop of
    /// <typeparamref name="TMin"/> and <typeparamref name="TMax"/> gives them: the extremes of a sparse
    /// table (level k: over 2^k points) read at two points per tile, eight tiles a vector; less and plus
    /// <paramref name="margin"/>.
    /// </summary>
    public void Extremes<TMin, TMax>(ReadOnlySpan<float> lowValues, ReadOnlySpan<float> highValues, Span<float> low, Span<float> high, float margin, Span<float> scratch)
        where TMin : IExtreme
        where TMax : IExtreme
    {
        var tile = 0;
        if (Vector256.IsHardwareAccelerated && _levels >= 0)
        {
            var stride = LevelStride;
            var lows = scratch[..((_levels + 1) * stride)];
            var highs = scratch.Slice((_levels + 1) * stride, (_levels + 1) * stride);
            lowValues.CopyTo(lows);
            highValues.CopyTo(highs);
            for (var k = 1; k <= _levels; k++)
            {
                Double<TMin>(lows.Slice((k - 1) * stride, stride), lows.Slice(k * stride, stride), GridSize, 1 << (k - 1));
                Double<TMax>(highs.Slice((k - 1) * stride, stride), highs.Slice(k * stride, stride), GridSize, 1 << (k - 1));
            }

            for (; tile + Lanes <= Count; tile += Lanes)
            {
                var block = tile / Lanes;
                var window = _windows[block];
                if (window < 0)
                {
                    ScalarExtremes<TMin, TMax>(lowValues, highValues, tile, tile + Lanes, low, high, margin);
                    continue;
                }

                var (level, vectors) = (_windowLevels[block] * stride, _windowVectors[block]);
                var first = Vector256.Create(_firstOffsets.AsSpan(tile, Lanes));
                var second = Vector256.Create(_secondOffsets.AsSpan(tile, Lanes));
                var lowWindow = lows.Slice(level + window, vectors * Lanes);
                var highWindow = highs.Slice(level + window, vectors * Lanes);
                (TMin.Of(Pick(lowWindow, first), Pick(lowWindow, second)) - Vector256.Create(margin)).CopyTo(low.Slice(tile, Lanes));
                (TMax.Of(Pick(highWindow, first), Pick(highWindow, second)) + Vector256.Create(margin)).CopyTo(high.Slice(tile, Lanes));
            }
        }

        ScalarExtremes<TMin, TMax>(lowValues, highValues, tile, Count, low, high, margin);
    }

    // Level k from level k - 1: the extremes over [c, c + 2^k) from those over [c, c + half) and
    // [c + half, c + 2^k), for every c whose second half starts on the row.
    private static void Double<TExtreme>(ReadOnlySpan<float> previous, Span<float> next, int length, int half)
        where TExtreme : IExtreme
    {
        var end = length - half;
        var c = 0;
        for (; c + Lanes <= end; c += Lanes)
        {
            TExtreme.Of(Vector256.Create(previous.Slice(c, Lanes)), Vector256.Create(previous.Slice(c + half, Lanes))).CopyTo(next.Slice(c, Lanes));
        }

        for (; c < end; c++)
        {
            next[c] = TExtreme.Of(previous[c], previous[c + half]);
        }
    }

    // Lane i: window[offsets[i]], from the window's vectors by shuffles.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Pick(ReadOnlySpan<float> window, Vector256<int> offsets)
    {
        var lanes = offsets & Vector256.Create(Lanes - 1);
        var vectors = Vector256.ShiftRightLogical(offsets, 3);
        var picked = Vector256.ShuffleNative(Vector256.Create(window[..Lanes]), lanes);
        for (var v = 1; v < window.Length / Lanes; v++)
        {
            picked = Vector256.ConditionalSelect(Vector256.Equals(vectors, Vector256.Create(v)).AsSingle(), Vector256.ShuffleNative(Vector256.Create(window.Slice(v * Lanes, Lanes)), lanes), picked);
        }

        return picked;
    }

    private void ScalarExtremes<TMin, TMax>(ReadOnlySpan<float> lowValues, ReadOnlySpan<float> highValues, int from, int to, Span<float> low, Span<float> high, float margin)
        where TMin : IExtreme
        where TMax : IExtreme
    {
        for (var t = from; t < to; t++)
        {
            var (min, max) = (lowValues[GridStarts[t]], highValues[GridStarts[t]]);
            for (var c = GridStarts[t] + 1; c <= GridEnds[t]; c++)
            {
                min = TMin.Of(min, lowValues[c]);
                max = TMax.Of(max, highValues[c]);
            }

            (low[t], high[t]) = (min - margin, max + margin);
        }
    }

    // Tiles [8b, 8b + 8) share a window when one level serves them all and both points each reads lie
    // within MaximumWindowVectors vectors from the first tile's start.
    private (int[] Windows, int[] Vectors, int[] Levels, int[] First, int[] Second, int MaxLevel) FindWindows()
    {
        var windows = new int[Count / Lanes];
        var (vectors, levels) = (new int[windows.Length], new int[windows.Length]);
        var (first, second) = (new int[Count], new int[Count]);
        var maxLevel = -1;
        for (var b = 0; b < windows.Length; b++)
        {
            // The shortest tile's level serves every tile of at most twice its 2^level points: two
            // overlapping reads of 2^level points cover such a tile exactly (tiles of 3 and 4 points, as
            // where an axis upsamples 3-4 times, share level 1).
            var start = GridStarts[b * Lanes];
            var (shortest, longest) = (int.MaxValue, 0);
            for (var t = b * Lanes; t < (b + 1) * Lanes; t++)
            {
                var extent = GridEnds[t] - GridStarts[t];
                (shortest, longest) = (Math.Min(shortest, extent), Math.Max(longest, extent));
            }

            var level = Level(shortest);
            var (fits, reach) = (longest <= MaximumVectorExtent && longest + 1 <= (2 << level), 0);
            for (var t = b * Lanes; t < (b + 1) * Lanes && fits; t++)
            {
                (first[t], second[t]) = (GridStarts[t] - start, GridEnds[t] + 1 - (1 << level) - start);
                reach = Math.Max(reach, second[t]);
            }

            fits &= reach < MaximumWindowVectors * Lanes;
            windows[b] = fits ? start : -1;
            if (fits)
            {
                (vectors[b], levels[b]) = ((reach / Lanes) + 1, level);
                maxLevel = Math.Max(maxLevel, level);
            }
        }

        return (windows, vectors, levels, first, second, maxLevel);
    }

    // The level whose 2^level points are at most a tile's extent + 1 points and over half of them.
    private static int Level(int extent) => 31 - BitOperations.LeadingZeroCount((uint)(extent + 1));
}
