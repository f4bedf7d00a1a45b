using System.Buffers;
using System.Numerics.Tensors;
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

    private readonly float[] _margins;
    private float[]? _bounds;

    public MaskTiles(ModelOutput output, ResizePlan plan)
    {
        Upsampler = new MaskUpsampler(output, plan);
        TileRows = new TileAxis(Upsampler.Rows);
        TileColumns = new TileAxis(Upsampler.Columns);
        TileCount = TileRows.Count * TileColumns.Count;
        BlockRows = new BlockAxis(Upsampler.Rows, TileRows);
        BlockColumns = new BlockAxis(Upsampler.Columns, TileColumns);
        var queries = output.Queries;
        _bounds = EngineArrayPool<float>.Shared.Rent(4 * queries * TileCount);
        var margins = _margins = new float[queries];
        for (var q = 0; q < queries; q++)
        {
            margins[q] = (RelativeMargin * MathF.Abs(TensorPrimitives.MaxMagnitude(Upsampler.Plane(q)))) + 1e-30f;
        }

        var gridWidth = Upsampler.Columns.ResizedSize;
        var work = (long)queries * Upsampler.Rows.ResizedSize * (gridWidth + output.MaskWidth);
        Parallel.For(0, TileRows.Count, RowParallelism.ForWork(work), () => EngineArrayPool<float>.Shared.Rent((2 * gridWidth) + output.MaskWidth), (row, _, scratch) =>
        {
            BoundRow(row, margins, scratch);
            return scratch;
        }, scratch => EngineArrayPool<float>.Shared.Return(scratch));

        var logits = _bounds.AsSpan(0, 2 * queries * TileCount);
        TensorPrimitives.Sigmoid(logits, _bounds.AsSpan(logits.Length, logits.Length));
    }

    public MaskUpsampler Upsampler { get; }

    public ModelOutput Output => Upsampler.Output;

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

    /// <summary>Lower bounds on query <paramref name="query"/>'s logits, one per tile of tile row <paramref name="row"/>.</summary>
    public ReadOnlySpan<float> Lower(int query, int row) => Bounds(query).Slice(row * TileColumns.Count, TileColumns.Count);

    /// <summary>Upper bounds on the logits.</summary>
    public ReadOnlySpan<float> Upper(int query, int row) => Bounds(Output.Queries + query).Slice(row * TileColumns.Count, TileColumns.Count);

    /// <summary>float32 sigmoid of <see cref="Lower"/>: within a few ulps of a lower bound on the sigmoid.</summary>
    public ReadOnlySpan<float> SigmoidLower(int query, int row) => Bounds((2 * Output.Queries) + query).Slice(row * TileColumns.Count, TileColumns.Count);

    /// <summary>float32 sigmoid of <see cref="Upper"/>.</summary>
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

    private void BoundRow(int row, float[] margins, float[] scratch)
    {
        var gridWidth = Upsampler.Columns.ResizedSize;
        var low = scratch.AsSpan(0, gridWidth);
        var high = scratch.AsSpan(gridWidth, gridWidth);
        var blendScratch = scratch.AsSpan(2 * gridWidth, Output.MaskWidth);
        var columns = TileColumns;
        for (var q = 0; q < Output.Queries; q++)
        {
            // Min and Max return NaN when either side is NaN: a NaN logit leaves its tiles undecided.
            for (var r = TileRows.GridStarts[row]; r <= TileRows.GridEnds[row]; r++)
            {
                Upsampler.FoldGridRow(q, r, low, high, r == TileRows.GridStarts[row], blendScratch);
            }

            var margin = margins[q];
            var lower = Bounds(q).Slice(row * columns.Count, columns.Count);
            var upper = Bounds(Output.Queries + q).Slice(row * columns.Count, columns.Count);
            for (var t = 0; t < columns.Count; t++)
            {
                var (min, max) = (low[columns.GridStarts[t]], high[columns.GridStarts[t]]);
                for (var c = columns.GridStarts[t] + 1; c <= columns.GridEnds[t]; c++)
                {
                    // MathF.Min and Max return NaN when either side is NaN.
                    min = MathF.Min(min, low[c]);
                    max = MathF.Max(max, high[c]);
                }

                lower[t] = min - margin;
                upper[t] = max + margin;
            }
        }
    }
}
