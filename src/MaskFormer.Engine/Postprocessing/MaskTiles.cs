using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Bounds on every query's upsampled mask logits over tiles of output pixels, computed once and shared
/// by the inference modes. Bilinear resizes are convex blends, so every output pixel of a tile lies
/// between the smallest and largest logit of the resized-grid points it blends; a mode decides a whole
/// tile from these bounds and computes per pixel (<see cref="MaskUpsampler.ComputePixels"/>) only
/// where they leave the answer open — along segment boundaries. The grid has the model's resolution,
/// so the cost of the bounds does not grow with the image.
/// </summary>
internal sealed class MaskTiles : IDisposable
{
    // Float32 upsampling rounds each output by well under 1e-6 of the largest logit it blends (about
    // a dozen roundings of 2^-24); the margin is ten times that, so a bound never excludes what the
    // per-pixel arithmetic gives.
    private const float RelativeMargin = 1e-5f;

    // Logits below this in magnitude blend to neither NaN nor infinity, so one-instruction extremes give
    // the IEEE ones up to the sign of a zero, which the margin erases; a NaN logit fails the test.
    private const float PlainLogits = 1e37f;

    // Grid intervals a tile spans on average, each way, from which its bounds come from the mask's corners.
    private const double MinimumCornerExtent = 6;

    private readonly float[] _margins;
    private readonly bool[] _plain;
    private float[]? _bounds;

    public MaskTiles(ModelOutput output, ResizePlan plan)
    {
        Upsampler = new MaskUpsampler(output, plan);
        TileRows = Upsampler.RowGeometry.Tiles;
        TileColumns = Upsampler.ColumnGeometry.Tiles;
        TileCount = TileRows.Count * TileColumns.Count;
        BlockRows = Upsampler.RowGeometry.Blocks;
        BlockColumns = Upsampler.ColumnGeometry.Blocks;
        var queries = output.Queries;
        _bounds = EngineArrayPool<float>.Shared.Rent(4 * queries * TileCount);
        var margins = _margins = new float[queries];
        var largest = new float[queries];
        _plain = new bool[queries];
        for (var q = 0; q < queries; q++)
        {
            largest[q] = MathF.Abs(TensorPrimitives.MaxMagnitude(Upsampler.Plane(q)));
            margins[q] = (RelativeMargin * largest[q]) + 1e-30f;
            _plain[q] = largest[q] < PlainLogits;
        }

        // Where a tile spans many grid points each way (an output no larger than the resized input), its
        // bounds from the mask's corners cost far less than from every grid point, and are a little wider;
        // where it spans a few, the grid points are as cheap and tighter (measured, one thread: the
        // realistic-width 512x512 output's bounds 12.8 → 4.9 ms, panoptic 38.5 → 39.3, all 97.7 → 90.9;
        // at 1920x1080 and on the tiny model, where tiles span 2-4 grid points, slower overall).
        var byCorners = BoundsFromCorners = TileRows.MeanGridExtent >= MinimumCornerExtent && TileColumns.MeanGridExtent >= MinimumCornerExtent;
        var gridWidth = Upsampler.Columns.ResizedSize;
        var work = (long)queries * Upsampler.Rows.ResizedSize * (gridWidth + output.MaskWidth);
        Parallel.For(0, queries, RowParallelism.ForWork(work), () => new BoundScratch(this), (q, _, scratch) =>
        {
            if (_plain[q] && byCorners)
            {
                BoundQueryByCorners(q, margins[q], scratch);
            }
            else if (_plain[q])
            {
                BoundQuery(q, margins[q], scratch);
            }
            else
            {
                // A mask whose blends can reach infinity (or hold a NaN) has no bounds: every tile is
                // undecided for it, and its pixels are computed as the dense computation does. Bounds on
                // its grid values would not hold: where the second resize keeps the grid, a pixel's
                // second tap weighs nothing, and 0 · ∞ makes NaN next to an infinite grid value.
                Bounds(q).Fill(float.NaN);
                Bounds(queries + q).Fill(float.NaN);
            }

            // While the query's bounds are still in cache.
            SubnormalFloor.SigmoidBounds(Bounds(q), Bounds((2 * queries) + q), Bounds(queries + q), Bounds((3 * queries) + q));
            return scratch;
        }, scratch => scratch.Dispose());
    }

    public MaskUpsampler Upsampler { get; }

    public ModelOutput Output => Upsampler.Output;

    /// <summary>Whether plain queries' bounds come from the mask's corners (<see cref="BoundQueryByCorners"/>), not every grid point.</summary>
    public bool BoundsFromCorners { get; }

    public TileAxis TileRows { get; }

    public TileAxis TileColumns { get; }

    public int TileCount { get; }

    /// <summary>Tile rows cut into blocks, for bounds finer than a tile's.</summary>
    public BlockAxis BlockRows { get; }

    /// <summary>Tile columns cut into blocks.</summary>
    public BlockAxis BlockColumns { get; }

    /// <summary>
    /// What query <paramref name="query"/>'s bounds add to the extremes of its resized-grid values so
    /// that they hold for the per-pixel float32 arithmetic.
    /// </summary>
    public float Margin(int query) => _margins[query];

    /// <summary>
    /// Whether query <paramref name="query"/>'s mask logits are all below 1e37 in magnitude (no NaN):
    /// blends of them are finite, so a tap that weighs nothing adds only a signed zero.
    /// </summary>
    public bool IsPlain(int query) => _plain[query];

    /// <summary>
    /// Query <paramref name="query"/>'s logits at output columns [<paramref name="x0"/>, x0 + values.Length)
    /// of a row of <see cref="MaskUpsampler.BlendRow"/>, for callers that compare them with 0 or take their
    /// sigmoids: where the second resize keeps the grid and the mask is plain, two taps (the last two weigh
    /// nothing and would change only the sign of a zero); otherwise all four, whose zero weights times an
    /// infinite blend make NaN where the dense computation's do.
    /// </summary>
    public void InterpolatePixels(int query, ReadOnlySpan<float> blended, int x0, Span<float> values)
    {
        if (Upsampler.Columns.TwoTaps && _plain[query])
        {
            Upsampler.InterpolateTwoTaps(blended, x0, values);
        }
        else
        {
            Upsampler.Interpolate(blended, x0, values);
        }
    }

    /// <summary>Lower bounds on query <paramref name="query"/>'s logits, one per tile of tile row <paramref name="row"/>.</summary>
    public ReadOnlySpan<float> Lower(int query, int row) => Bounds(query).Slice(row * TileColumns.Count, TileColumns.Count);

    /// <summary>Upper bounds on the logits.</summary>
    public ReadOnlySpan<float> Upper(int query, int row) => Bounds(Output.Queries + query).Slice(row * TileColumns.Count, TileColumns.Count);

    /// <summary>
    /// float32 sigmoid of <see cref="Lower"/>: within a few ulps of a lower bound on the sigmoid; 0 where
    /// that is below <see cref="SubnormalFloor.Tiny"/>.
    /// </summary>
    public ReadOnlySpan<float> SigmoidLower(int query, int row) => Bounds((2 * Output.Queries) + query).Slice(row * TileColumns.Count, TileColumns.Count);

    /// <summary>float32 sigmoid of <see cref="Upper"/>; at least <see cref="SubnormalFloor.Tiny"/>.</summary>
    public ReadOnlySpan<float> SigmoidUpper(int query, int row) => Bounds((3 * Output.Queries) + query).Slice(row * TileColumns.Count, TileColumns.Count);

    public void Dispose()
    {
        var bounds = Interlocked.Exchange(ref _bounds, null);
        if (bounds is not null)
        {
            EngineArrayPool<float>.Shared.Return(bounds);
        }
    }

    private Span<float> Bounds(int plane) => (_bounds ?? throw new ObjectDisposedException(nameof(MaskTiles))).AsSpan(plane * TileCount, TileCount);

    // Query `query`'s bounds, tile row after tile row: the extremes over the tile row's grid rows, point
    // by point, then over each tile's columns. A grid row that ends one tile row and starts the next
    // is computed once. The logits are plain, so a grid row whose neighbours in the tile row blend the
    // same two mask rows is skipped: its blend weight lies between theirs, so each of its values lies
    // between the values of the outermost such rows, which are folded (up to float32 rounding, which the
    // margin covers). Upsampling by 4 skips about half the rows.
    private void BoundQuery(int query, float margin, BoundScratch scratch)
    {
        var (rows, count, gridWidth) = (TileRows, TileColumns.Count, Upsampler.Columns.ResizedSize);
        var gridLower = Upsampler.Rows.GridLower;
        var lows = Bounds(query);
        var highs = Bounds(Output.Queries + query);
        var low = scratch.Low.AsSpan(0, gridWidth);
        var high = scratch.High.AsSpan(0, gridWidth);
        var shared = scratch.SharedRow.AsSpan(0, gridWidth);
        var sharedRow = -1;
        for (var row = 0; row < rows.Count; row++)
        {
            var (first, end) = (rows.GridStarts[row], rows.GridEnds[row]);
            var r = first;
            if (first == sharedRow)
            {
                shared.CopyTo(low);
                shared.CopyTo(high);
                r++;
            }

            for (; r <= end; r++)
            {
                if (r > first && r < end && gridLower[r - 1] == gridLower[r] && gridLower[r + 1] == gridLower[r])
                {
                    continue;
                }

                if (r == end && r > first && row + 1 < rows.Count && rows.GridStarts[row + 1] == end)
                {
                    Upsampler.ComputeGridRow(query, r, shared, scratch.Blend);
                    Fold<NativeMin, NativeMax>(shared, low, high);
                    sharedRow = r;
                }
                else
                {
                    Upsampler.FoldGridRow<NativeMin, NativeMax>(query, r, low, high, r == first, scratch.Blend);
                }
            }

            TileColumns.Extremes<NativeMin, NativeMax>(low, high, lows.Slice(row * count, count), highs.Slice(row * count, count), margin, scratch.Extremes);
        }
    }

    // Query `query`'s bounds (finite logits) from the mask itself. Over the rectangle of resized-grid
    // positions a tile's pixels blend, the bilinear upsampling of the mask is bilinear within each mask
    // cell, so its extremes lie at the rectangle's corners and where mask rows and columns cross it: the
    // tile's first and last grid rows (blended) and the mask rows between them, each at the tile's first
    // and last grid columns (blended) and the mask columns between. Every pixel blends grid values from
    // that rectangle, so lies between them (up to float32 rounding, which the margin covers). The rows are
    // folded into one lowest and one highest row first; a blend of the lowest row's values is no higher
    // than the lowest of the rows' blends, so the bounds still hold, a little wider. Costs the mask's
    // size a tile row rather than the resized grid's.
    private void BoundQueryByCorners(int query, float margin, BoundScratch scratch)
    {
        var (rows, columns) = (TileRows, TileColumns);
        var (rowLower, columnLower) = (Upsampler.Rows.GridLower, Upsampler.Columns.GridLower);
        var maskWidth = Output.MaskWidth;
        var plane = Upsampler.Plane(query);
        var lows = Bounds(query);
        var highs = Bounds(Output.Queries + query);
        var low = scratch.Low.AsSpan(0, maskWidth);
        var high = scratch.High.AsSpan(0, maskWidth);
        var count = columns.Count;
        for (var row = 0; row < rows.Count; row++)
        {
            var (first, end) = (rows.GridStarts[row], rows.GridEnds[row]);
            var blended = Upsampler.BlendGridRow(query, first, scratch.Blend);
            blended.CopyTo(low);
            blended.CopyTo(high);
            Fold<NativeMin, NativeMax>(Upsampler.BlendGridRow(query, end, scratch.Blend), low, high);
            for (var i = rowLower[first] + 1; i <= rowLower[end]; i++)
            {
                Fold<NativeMin, NativeMax>(plane.Slice(i * maskWidth, maskWidth), low, high);
            }

            var tileLows = lows.Slice(row * count, count);
            var tileHighs = highs.Slice(row * count, count);
            for (var t = 0; t < count; t++)
            {
                var (c0, c1) = (columns.GridStarts[t], columns.GridEnds[t]);
                var min = MathF.Min(Upsampler.GridPoint(low, c0), Upsampler.GridPoint(low, c1));
                var max = MathF.Max(Upsampler.GridPoint(high, c0), Upsampler.GridPoint(high, c1));
                for (var k = columnLower[c0] + 1; k <= columnLower[c1]; k++)
                {
                    (min, max) = (MathF.Min(min, low[k]), MathF.Max(max, high[k]));
                }

                (tileLows[t], tileHighs[t]) = (min - margin, max + margin);
            }
        }
    }

    private static void Fold<TMin, TMax>(ReadOnlySpan<float> values, Span<float> low, Span<float> high)
        where TMin : IExtreme
        where TMax : IExtreme
    {
        var c = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; c + Vector256<float>.Count <= values.Length; c += Vector256<float>.Count)
            {
                var vector = Vector256.Create(values.Slice(c, Vector256<float>.Count));
                var lowSlice = low.Slice(c, Vector256<float>.Count);
                var highSlice = high.Slice(c, Vector256<float>.Count);
                TMin.Of(Vector256.Create(lowSlice), vector).CopyTo(lowSlice);
                TMax.Of(Vector256.Create(highSlice), vector).CopyTo(highSlice);
            }
        }

        for (; c < values.Length; c++)
        {
            (low[c], high[c]) = (TMin.Of(low[c], values[c]), TMax.Of(high[c], values[c]));
        }
    }

    private sealed class BoundScratch : IDisposable
    {
        public BoundScratch(MaskTiles tiles)
        {
            var gridWidth = tiles.Upsampler.Columns.ResizedSize;
            Blend = EngineArrayPool<float>.Shared.Rent(tiles.Output.MaskWidth);
            Extremes = EngineArrayPool<float>.Shared.Rent(tiles.TileColumns.ScratchLength);
            // Rows of the grid, or of the mask (BoundQueryByCorners), which can be the wider for a tiny input.
            Low = EngineArrayPool<float>.Shared.Rent(Math.Max(gridWidth, tiles.Output.MaskWidth));
            High = EngineArrayPool<float>.Shared.Rent(Math.Max(gridWidth, tiles.Output.MaskWidth));
            SharedRow = EngineArrayPool<float>.Shared.Rent(gridWidth);
        }

        public float[] Blend { get; }

        public float[] Extremes { get; }

        public float[] Low { get; }

        public float[] High { get; }

        public float[] SharedRow { get; }

        public void Dispose()
        {
            EngineArrayPool<float>.Shared.Return(Blend);
            EngineArrayPool<float>.Shared.Return(Extremes);
            EngineArrayPool<float>.Shared.Return(Low);
            EngineArrayPool<float>.Shared.Return(High);
            EngineArrayPool<float>.Shared.Return(SharedRow);
        }
    }
}
