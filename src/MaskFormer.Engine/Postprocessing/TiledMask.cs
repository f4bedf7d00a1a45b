using System.Buffers;
using System.Numerics.Tensors;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// One query's binary mask (logit &gt; 0) at the original size, its area, box and sigmoid sum, tile by
/// tile: a tile whose logit bounds are all above 0 is inside, all at or below 0 outside; only the
/// tiles between are computed per pixel, with the dense computation's float32 arithmetic.
/// </summary>
internal static class TiledMask
{
    // An inside tile whose sigmoid bounds are this close (saturated, deep inside the mask) adds their
    // midpoint for each pixel: within 1e-6 of each pixel's own sigmoid, so the mean within 1e-6 too.
    private const float SaturatedGap = 1e-6f;

    public static (BinaryMask Mask, long Area, double SigmoidSum, PixelBox Box) Measure(MaskTiles tiles, int query)
    {
        var upsampler = tiles.Upsampler;
        var (width, height) = (upsampler.Width, upsampler.Height);
        var mask = new BinaryMask(width, height);
        var rowAreas = new long[height];
        var rowSums = new double[height];
        var rowFirst = new int[height];
        var rowLast = new int[height];
        var scratchLength = upsampler.ScratchLength + width;
        var work = (long)tiles.TileCount * 64;
        Parallel.For(0, tiles.TileRows.Count, RowParallelism.ForWork(work), () => (EngineArrayPool<int>.Shared.Rent(3 * width), EngineArrayPool<float>.Shared.Rent(scratchLength), EngineArrayPool<double>.Shared.Rent(width)), (row, _, scratch) =>
        {
            MeasureRow(tiles, query, row, mask, (rowAreas, rowSums, rowFirst, rowLast), scratch.Item1, scratch.Item2, scratch.Item3);
            return scratch;
        }, scratch =>
        {
            EngineArrayPool<int>.Shared.Return(scratch.Item1);
            EngineArrayPool<float>.Shared.Return(scratch.Item2);
            EngineArrayPool<double>.Shared.Return(scratch.Item3);
        });

        var box = default(PixelBox.Builder);
        for (var y = 0; y < height; y++)
        {
            if (rowAreas[y] > 0)
            {
                box.AddRun(rowFirst[y], rowLast[y], y);
            }
        }

        return (mask, rowAreas.Sum(), rowSums.Sum(), box.Build());
    }

    private static void MeasureRow(MaskTiles tiles, int query, int row, BinaryMask mask, (long[] Areas, double[] Sums, int[] First, int[] Last) rows, int[] indices, float[] floats, double[] doubles)
    {
        var upsampler = tiles.Upsampler;
        var columns = tiles.TileColumns;
        var lower = tiles.Lower(query, row);
        var upper = tiles.Upper(query, row);
        var sigmoidLower = tiles.SigmoidLower(query, row);
        var sigmoidUpper = tiles.SigmoidUpper(query, row);

        // Saturated inside tiles become runs of ones with a known sigmoid sum; undecided pixels (and
        // those of unsaturated inside tiles, whose sigmoids are needed) are gathered.
        var width = upsampler.Width;
        var xs = indices.AsSpan(0, width);
        var runs = indices.AsSpan(width, 2 * width);
        var (pixels, runCount, runArea, runSum) = (0, 0, 0L, 0.0);
        for (var t = 0; t < columns.Count; t++)
        {
            var (x0, length) = (columns.Starts[t], columns.Length(t));
            if (upper[t] <= 0f)
            {
                continue;
            }

            if (lower[t] > 0f && sigmoidUpper[t] - sigmoidLower[t] <= SaturatedGap)
            {
                if (runCount > 0 && runs[(2 * runCount) - 2] + runs[(2 * runCount) - 1] == x0)
                {
                    runs[(2 * runCount) - 1] += length;
                }
                else
                {
                    (runs[2 * runCount], runs[(2 * runCount) + 1]) = (x0, length);
                    runCount++;
                }

                runArea += length;
                runSum += length * (((double)sigmoidLower[t] + sigmoidUpper[t]) / 2);
                continue;
            }

            for (var x = x0; x < x0 + length; x++)
            {
                xs[pixels++] = x;
            }
        }

        var values = floats.AsSpan(0, pixels);
        var blend = floats.AsSpan(width, upsampler.ScratchLength);
        var insideLogits = doubles.AsSpan(0, width);
        for (var y = tiles.TileRows.Starts[row]; y < tiles.TileRows.Starts[row + 1]; y++)
        {
            var maskRow = mask.Row(y);
            var (area, sum, first, last) = (runArea, runSum, int.MaxValue, -1);
            for (var r = 0; r < runCount; r++)
            {
                maskRow.Slice(runs[2 * r], runs[(2 * r) + 1]).Fill(1);
                first = Math.Min(first, runs[2 * r]);
                last = Math.Max(last, runs[2 * r] + runs[(2 * r) + 1] - 1);
            }

            if (pixels > 0)
            {
                upsampler.ComputePixels(query, y, xs[..pixels], values, blend);
                var inside = 0;
                for (var k = 0; k < pixels; k++)
                {
                    if (values[k] > 0f)
                    {
                        var x = xs[k];
                        maskRow[x] = 1;
                        insideLogits[inside++] = values[k];
                        first = Math.Min(first, x);
                        last = Math.Max(last, x);
                    }
                }

                // The dense sum in float64, vectorized: each term within an ulp or two of 1 / (1 + exp(-x)).
                if (inside > 0)
                {
                    area += inside;
                    TensorPrimitives.Sigmoid(insideLogits[..inside], insideLogits[..inside]);
                    sum += TensorPrimitives.Sum<double>(insideLogits[..inside]);
                }
            }

            (rows.Areas[y], rows.Sums[y], rows.First[y], rows.Last[y]) = (area, sum, first, last);
        }
    }
}
