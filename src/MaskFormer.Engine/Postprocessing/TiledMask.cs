using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Queries' binary masks (logit &gt; 0) at the original size as row runs, with their area, box and
/// sigmoid sum, tile by tile: a tile whose logit bounds are all above 0 is inside, all at or below 0
/// outside; only the tiles between, and inside tiles whose sigmoids the score needs, are computed per
/// pixel, with the dense computation's float32 logits. No full-size mask is written.
/// </summary>
internal static class TiledMask
{
    // An inside tile whose sigmoid bounds are this close (saturated, deep inside the mask) adds their
    // midpoint for each pixel: within 1e-6 of each pixel's own sigmoid, so the mean within 1e-6 too.
    private const float SaturatedGap = 1e-6f;

    // Span offsets that are not positions among the row's computed pixels (Classify).
    private const int SaturatedSpan = -1;
    private const int SummedSpan = -2;

    public static MeasuredMask Measure(MaskTiles tiles, int query) => Measure(tiles, [query])[0];

    /// <summary>Measures each of <paramref name="queries"/>, in parallel over queries (and bands of rows when there are few).</summary>
    public static MeasuredMask[] Measure(MaskTiles tiles, int[] queries)
    {
        var upsampler = tiles.Upsampler;
        var (width, height) = (upsampler.Width, upsampler.Height);
        var tileRows = tiles.TileRows.Count;

        // One band per query when the queries alone keep the cores busy (no joins); with few queries,
        // bands of tile rows so that one large mask still spreads.
        var bands = Math.Clamp(((2 * Environment.ProcessorCount) + queries.Length - 1) / Math.Max(1, queries.Length), 1, Math.Max(1, tileRows));
        var builders = new MaskRunsBuilder[queries.Length * bands];
        var rowSums = new double[queries.Length][];
        var measured = new MeasuredMask[queries.Length];
        try
        {
            for (var q = 0; q < queries.Length; q++)
            {
                rowSums[q] = EngineArrayPool<double>.Shared.Rent(height);
                for (var b = 0; b < bands; b++)
                {
                    var (first, end) = (tiles.TileRows.Starts[b * tileRows / bands], tiles.TileRows.Starts[(b + 1) * tileRows / bands]);
                    builders[(q * bands) + b] = new MaskRunsBuilder(first, end - first);
                }
            }

            var work = (long)queries.Length * width * height;
            Parallel.For(0, builders.Length, RowParallelism.ForWork(work), () => new Scratch(tiles), (i, _, scratch) =>
            {
                var (q, b) = (i / bands, i % bands);
                MeasureBand(tiles, queries[q], b * tileRows / bands, (b + 1) * tileRows / bands, builders[i], rowSums[q], scratch);
                return scratch;
            }, scratch => scratch.Dispose());

            for (var q = 0; q < queries.Length; q++)
            {
                var band = builders.AsSpan(q * bands, bands);
                var runs = MaskRunsBuilder.Build(band, width, height);
                var (area, sum) = (0L, 0.0);
                foreach (var builder in band)
                {
                    area += builder.Area;
                }

                // Row by row in order, whatever the bands: the same sum on any number of cores.
                foreach (var rowSum in rowSums[q].AsSpan(0, height))
                {
                    sum += rowSum;
                }

                measured[q] = new MeasuredMask(runs, area, sum, Box(runs));
            }

            return measured;
        }
        catch
        {
            foreach (var done in measured)
            {
                done.Runs?.Dispose();
            }

            throw;
        }
        finally
        {
            foreach (var builder in builders)
            {
                builder?.Dispose();
            }

            foreach (var sums in rowSums)
            {
                if (sums is not null)
                {
                    EngineArrayPool<double>.Shared.Return(sums);
                }
            }
        }
    }

    private static PixelBox Box(MaskRuns runs)
    {
        var box = default(PixelBox.Builder);
        for (var y = 0; y < runs.Height; y++)
        {
            var row = runs.Row(y);
            if (row.Length > 0)
            {
                box.AddRun(row[0], row[^1] - 1, y);
            }
        }

        return box.Build();
    }

    private static void MeasureBand(MaskTiles tiles, int query, int firstTileRow, int endTileRow, MaskRunsBuilder runs, double[] rowSums, Scratch scratch)
    {
        var upsampler = tiles.Upsampler;

        // Two taps where the grid is kept (MaskTiles.InterpolatePixels): the sign of a zero logit they may
        // change is seen neither by the runs (> 0) nor by the sigmoid sum.
        var plain = tiles.IsPlain(query);

        // Where the columns upsample, inside tiles sum their sigmoids segment by segment from the grid
        // values (SegmentSigmoidSum) instead of pixel by pixel; only finite blends (plain masks).
        var segments = plain ? upsampler.Columns.Segments : null;
        for (var row = firstTileRow; row < endTileRow; row++)
        {
            var (spanCount, edgeCount, pixels, saturatedSum) = Classify(tiles, query, row, segments is not null, scratch);
            var (spans, edges) = (scratch.Spans, scratch.Edges);
            var values = scratch.Values.AsSpan(0, pixels);
            var sigmoids = scratch.Sigmoids.AsSpan(0, pixels);
            var summedSpans = scratch.SummedSpans;
            for (var y = tiles.TileRows.Starts[row]; y < tiles.TileRows.Starts[row + 1]; y++)
            {
                var blended = pixels > 0 || summedSpans > 0 ? upsampler.BlendRow(query, y, scratch.Blend) : default;
                if (pixels > 0)
                {
                    for (var s = 0; s < 3 * spanCount; s += 3)
                    {
                        if (spans[s + 2] < 0)
                        {
                            continue;
                        }

                        tiles.InterpolatePixels(query, blended, spans[s], values.Slice(spans[s + 2], spans[s + 1] - spans[s]));
                    }

                    // float32 sigmoids within 2e-7 of 1 / (1 + exp(-x)), summed in float64: the mean stays
                    // within 1e-6 with the saturated tiles' midpoints. Logits near infinity or NaN take
                    // the library's sigmoid, which handles them.
                    if (plain)
                    {
                        SumSigmoid.Compute(values, sigmoids);
                    }
                    else
                    {
                        LibrarySigmoid.Compute(values, sigmoids);
                    }
                }

                var (sum, edge) = (summedSpans > 0 ? saturatedSum + SegmentSum(upsampler, blended, scratch) : saturatedSum, 0);
                for (var s = 0; s < 3 * spanCount; s += 3)
                {
                    var (start, end, offset) = (spans[s], spans[s + 1], spans[s + 2]);
                    if (offset < 0)
                    {
                        runs.Add(start, end);
                        continue;
                    }

                    // Inside tiles are runs whole and add every sigmoid; only the edges between are
                    // scanned. The sum is exact in any order (SigmoidSum), so piece by piece is the same.
                    var x = start;
                    for (; edge < 2 * edgeCount && edges[edge] < end; edge += 2)
                    {
                        var (edgeStart, edgeEnd) = (edges[edge], edges[edge + 1]);
                        if (edgeStart > x)
                        {
                            runs.Add(x, edgeStart);
                            sum += InsideSum(sigmoids.Slice(offset + x - start, edgeStart - x));
                        }

                        var edgeValues = values.Slice(offset + edgeStart - start, edgeEnd - edgeStart);
                        AddRuns(edgeValues, edgeStart, runs);
                        sum += SigmoidSum(edgeValues, sigmoids.Slice(offset + edgeStart - start, edgeEnd - edgeStart));
                        x = edgeEnd;
                    }

                    if (end > x)
                    {
                        runs.Add(x, end);
                        sum += InsideSum(sigmoids.Slice(offset + x - start, end - x));
                    }
                }

                runs.EndRow(y);
                rowSums[y] = sum;
            }
        }
    }

    // The sigmoid sum of the tile row's summed spans (their segments marked in scratch.Summed) on one
    // output row, from the grid values under it; the segments the series cannot take, pixel by pixel.
    private static double SegmentSum(MaskUpsampler upsampler, ReadOnlySpan<float> blended, Scratch scratch)
    {
        var segments = upsampler.Columns.Segments!;
        var (first, count) = (scratch.SummedFirst, scratch.SummedCount);

        // One past the last grid point: its outputs weigh the next at 0, so any finite value does.
        var grid = scratch.Grid.AsSpan(0, ((count + 15) & ~15) + 1);
        var inside = Math.Min(grid.Length, segments.Count - first);
        upsampler.GridPoints(blended, first, grid[..inside]);
        grid[inside..].Fill(grid[inside - 1]);
        var sum = SegmentSigmoidSum.Sum(segments, grid, scratch.Summed, first, count, scratch.Failed, out var failedCount);

        // The few segments left, all their pixels in one span: whole vectors of sigmoids.
        var pixels = 0;
        foreach (var r in scratch.Failed.AsSpan(0, failedCount))
        {
            var length = (int)segments.Pixels[r];
            upsampler.Interpolate(blended, segments.First[r], scratch.SegmentValues.AsSpan(pixels, length));
            pixels += length;
        }

        var values = scratch.SegmentValues.AsSpan(0, pixels);
        SumSigmoid.Compute(values, values);
        sum += InsideSum(values);
        return sum;
    }

    // Tile row `row` as spans of columns (start, end, offset): saturated inside tiles (offset -1) become
    // runs of ones with a known sigmoid sum; with `bySegments`, the other inside tiles (offset -2) runs
    // of ones whose sum comes from the grid (SegmentSum); the rest that are not outside are computed per
    // pixel, one span after the other, the span's first value at `offset`. Edges (start, end): the
    // columns of the computed tiles that are not wholly inside, the only ones whose runs need a scan.
    // The summed spans' count is left in scratch.SummedSpans.
    private static (int Spans, int Edges, int Pixels, double SaturatedSum) Classify(MaskTiles tiles, int query, int row, bool bySegments, Scratch scratch)
    {
        var columns = tiles.TileColumns;
        var lower = tiles.Lower(query, row);
        var upper = tiles.Upper(query, row);
        var sigmoidLower = tiles.SigmoidLower(query, row);
        var sigmoidUpper = tiles.SigmoidUpper(query, row);
        var (spans, edges) = (scratch.Spans, scratch.Edges);
        var (count, edgeCount, pixels, saturatedSum, summedSpans) = (0, 0, 0, 0.0, 0);
        var resizedLower = tiles.Upsampler.Columns.ResizedLower;
        var (summedFirst, summedEnd) = (-1, -1);
        for (var t = NextOpen(upper, 0); t < columns.Count; t = NextOpen(upper, t + 1))
        {
            var (x0, length) = (columns.Starts[t], columns.Length(t));
            var inside = lower[t] > 0f;
            var saturated = inside && sigmoidUpper[t] - sigmoidLower[t] <= SaturatedGap;
            var kind = saturated ? SaturatedSpan : inside && bySegments ? SummedSpan : 0;
            if (saturated)
            {
                saturatedSum += length * (((double)sigmoidLower[t] + sigmoidUpper[t]) / 2);
            }
            else if (kind == 0)
            {
                pixels += length;
            }
            else
            {
                // A tile is whole segments (TileAxis joins runs of outputs over one grid point): marked,
                // after clearing the marks up to them (the first tile's, from the first segment on).
                var (from, to) = (resizedLower[x0], resizedLower[x0 + length - 1] + 1);
                (summedFirst, summedEnd) = summedFirst < 0 ? (from, from) : (summedFirst, summedEnd);
                scratch.Summed.AsSpan(summedEnd - summedFirst, from - summedEnd).Clear();
                scratch.Summed.AsSpan(from - summedFirst, to - from).Fill(-1);
                summedEnd = to;
            }

            if (!inside)
            {
                if (edgeCount > 0 && edges[(2 * edgeCount) - 1] == x0)
                {
                    edges[(2 * edgeCount) - 1] = x0 + length;
                }
                else
                {
                    (edges[2 * edgeCount], edges[(2 * edgeCount) + 1]) = (x0, x0 + length);
                    edgeCount++;
                }
            }

            var last = 3 * (count - 1);
            if (count > 0 && spans[last + 1] == x0 && Math.Min(spans[last + 2], 0) == kind)
            {
                spans[last + 1] = x0 + length;
                continue;
            }

            (spans[3 * count], spans[(3 * count) + 1], spans[(3 * count) + 2]) = (x0, x0 + length, kind < 0 ? kind : pixels - length);
            summedSpans += kind == SummedSpan ? 1 : 0;
            count++;
        }

        scratch.SummedSpans = summedSpans;
        (scratch.SummedFirst, scratch.SummedCount) = (summedFirst, summedEnd - summedFirst);
        if (summedSpans > 0)
        {
            scratch.Summed.AsSpan(summedEnd - summedFirst, 16).Clear();
        }

        return (count, edgeCount, pixels, saturatedSum);
    }

    // The first tile from `from` on that is not outside (an upper bound above 0, or NaN), else the row's
    // length: eight tiles a compare, so a row costs about the mask's width in it, not the image's.
    private static int NextOpen(ReadOnlySpan<float> upper, int from)
    {
        var t = from;
        if (t < upper.Length && !(upper[t] <= 0f))
        {
            return t;
        }

        if (Vector256.IsHardwareAccelerated)
        {
            for (; t + Vector256<float>.Count <= upper.Length; t += Vector256<float>.Count)
            {
                var closed = Vector256.LessThanOrEqual(Vector256.Create(upper.Slice(t, Vector256<float>.Count)), Vector256<float>.Zero).ExtractMostSignificantBits();
                if (closed != (1u << Vector256<float>.Count) - 1)
                {
                    return t + BitOperations.TrailingZeroCount(~closed);
                }
            }
        }

        for (; t < upper.Length; t++)
        {
            if (!(upper[t] <= 0f))
            {
                return t;
            }
        }

        return upper.Length;
    }

    // The runs of logits above 0 among one span's values (columns x0 on) and the sum of their sigmoids.
    internal static double Scan(ReadOnlySpan<float> values, ReadOnlySpan<float> sigmoids, int x0, MaskRunsBuilder runs)
    {
        AddRuns(values, x0, runs);
        return SigmoidSum(values, sigmoids);
    }

    // A block of logits at a time: the compare's sign bits say where runs start and end, and only those
    // lanes are visited (a block wholly inside or outside, none).
    private static void AddRuns(ReadOnlySpan<float> values, int x0, MaskRunsBuilder runs)
    {
        var (start, i) = (-1, 0);
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= values.Length - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var above = Vector512.GreaterThan(Vector512.Create(values.Slice(i, Vector512<float>.Count)), Vector512<float>.Zero).ExtractMostSignificantBits();
                start = AddBlockRuns(above, Vector512<float>.Count, x0 + i, start, runs);
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= values.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var above = Vector256.GreaterThan(Vector256.Create(values.Slice(i, Vector256<float>.Count)), Vector256<float>.Zero).ExtractMostSignificantBits();
                start = AddBlockRuns(above, Vector256<float>.Count, x0 + i, start, runs);
            }
        }

        // The rest (all of it without vector hardware) in blocks of up to 64, the same way.
        for (; i < values.Length; i += 64)
        {
            var (above, lanes) = (0ul, Math.Min(64, values.Length - i));
            for (var k = 0; k < lanes; k++)
            {
                above |= values[i + k] > 0f ? 1ul << k : 0ul;
            }

            start = AddBlockRuns(above, lanes, x0 + i, start, runs);
        }

        if (start >= 0)
        {
            runs.Add(start, x0 + values.Length);
        }
    }

    // The runs of one block of `lanes` logits (bit k of `above` set where lane k, column x + k, is above 0),
    // a run open since `start` (or -1) carried in and the one left open returned. A lane whose bit differs
    // from the lane before (or, for the first, from whether a run is open) starts or ends a run.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int AddBlockRuns(ulong above, int lanes, int x, int start, MaskRunsBuilder runs)
    {
        var changes = (above ^ ((above << 1) | (start >= 0 ? 1ul : 0ul))) & (ulong.MaxValue >> (64 - lanes));
        for (; changes != 0; changes &= changes - 1)
        {
            var lane = BitOperations.TrailingZeroCount(changes);
            if (start >= 0)
            {
                runs.Add(start, x + lane);
                start = -1;
            }
            else
            {
                start = x + lane;
            }
        }

        return start;
    }

    // The sigmoids of the logits above 0, summed in float64. Each is a float32 of at least 0.25 (0.5
    // give or take an ulp), so a multiple of 2^-25, and a saturated tile's midpoint a multiple of
    // 2^-26: a sum of fewer than 2^27 of them (images under 134 M pixels; the decoder's limit is 40 M)
    // is a multiple of 2^-26 below 2^27, which float64 holds exactly. So every partial sum is exact
    // and a mask's total is the same in any order or grouping: four accumulators, sixteen values a
    // step (thirty-two with 512-bit vectors), so the adds do not wait on each other.
    private static double SigmoidSum(ReadOnlySpan<float> values, ReadOnlySpan<float> sigmoids)
    {
        var (i, sum) = (0, 0.0);
        if (Vector512.IsHardwareAccelerated)
        {
            var (a, b, c, d) = (Vector512<double>.Zero, Vector512<double>.Zero, Vector512<double>.Zero, Vector512<double>.Zero);
            for (; i <= values.Length - (2 * Vector512<float>.Count); i += 2 * Vector512<float>.Count)
            {
                var first = Vector512.Create(sigmoids.Slice(i, Vector512<float>.Count)) & Vector512.GreaterThan(Vector512.Create(values.Slice(i, Vector512<float>.Count)), Vector512<float>.Zero);
                var second = Vector512.Create(sigmoids.Slice(i + Vector512<float>.Count, Vector512<float>.Count)) & Vector512.GreaterThan(Vector512.Create(values.Slice(i + Vector512<float>.Count, Vector512<float>.Count)), Vector512<float>.Zero);
                (a, b) = (a + Vector512.WidenLower(first), b + Vector512.WidenUpper(first));
                (c, d) = (c + Vector512.WidenLower(second), d + Vector512.WidenUpper(second));
            }

            sum = Vector512.Sum((a + b) + (c + d));
        }

        if (Vector256.IsHardwareAccelerated)
        {
            var (a, b, c, d) = (Vector256<double>.Zero, Vector256<double>.Zero, Vector256<double>.Zero, Vector256<double>.Zero);
            for (; i <= values.Length - (2 * Vector256<float>.Count); i += 2 * Vector256<float>.Count)
            {
                var first = Vector256.Create(sigmoids.Slice(i, Vector256<float>.Count)) & Vector256.GreaterThan(Vector256.Create(values.Slice(i, Vector256<float>.Count)), Vector256<float>.Zero);
                var second = Vector256.Create(sigmoids.Slice(i + Vector256<float>.Count, Vector256<float>.Count)) & Vector256.GreaterThan(Vector256.Create(values.Slice(i + Vector256<float>.Count, Vector256<float>.Count)), Vector256<float>.Zero);
                (a, b) = (a + Vector256.WidenLower(first), b + Vector256.WidenUpper(first));
                (c, d) = (c + Vector256.WidenLower(second), d + Vector256.WidenUpper(second));
            }

            if (i <= values.Length - Vector256<float>.Count)
            {
                var last = Vector256.Create(sigmoids.Slice(i, Vector256<float>.Count)) & Vector256.GreaterThan(Vector256.Create(values.Slice(i, Vector256<float>.Count)), Vector256<float>.Zero);
                (a, b) = (a + Vector256.WidenLower(last), b + Vector256.WidenUpper(last));
                i += Vector256<float>.Count;
            }

            sum += Vector256.Sum((a + b) + (c + d));
        }

        for (; i < values.Length; i++)
        {
            if (values[i] > 0f)
            {
                sum += sigmoids[i];
            }
        }

        return sum;
    }

    // The sum of an inside stretch's sigmoids (every logit above 0), as SigmoidSum without the compare.
    private static double InsideSum(ReadOnlySpan<float> sigmoids)
    {
        var (i, sum) = (0, 0.0);
        if (Vector512.IsHardwareAccelerated)
        {
            var (a, b, c, d) = (Vector512<double>.Zero, Vector512<double>.Zero, Vector512<double>.Zero, Vector512<double>.Zero);
            for (; i <= sigmoids.Length - (2 * Vector512<float>.Count); i += 2 * Vector512<float>.Count)
            {
                var first = Vector512.Create(sigmoids.Slice(i, Vector512<float>.Count));
                var second = Vector512.Create(sigmoids.Slice(i + Vector512<float>.Count, Vector512<float>.Count));
                (a, b) = (a + Vector512.WidenLower(first), b + Vector512.WidenUpper(first));
                (c, d) = (c + Vector512.WidenLower(second), d + Vector512.WidenUpper(second));
            }

            sum = Vector512.Sum((a + b) + (c + d));
        }

        if (Vector256.IsHardwareAccelerated)
        {
            var (a, b, c, d) = (Vector256<double>.Zero, Vector256<double>.Zero, Vector256<double>.Zero, Vector256<double>.Zero);
            for (; i <= sigmoids.Length - (2 * Vector256<float>.Count); i += 2 * Vector256<float>.Count)
            {
                var first = Vector256.Create(sigmoids.Slice(i, Vector256<float>.Count));
                var second = Vector256.Create(sigmoids.Slice(i + Vector256<float>.Count, Vector256<float>.Count));
                (a, b) = (a + Vector256.WidenLower(first), b + Vector256.WidenUpper(first));
                (c, d) = (c + Vector256.WidenLower(second), d + Vector256.WidenUpper(second));
            }

            if (i <= sigmoids.Length - Vector256<float>.Count)
            {
                var last = Vector256.Create(sigmoids.Slice(i, Vector256<float>.Count));
                (a, b) = (a + Vector256.WidenLower(last), b + Vector256.WidenUpper(last));
                i += Vector256<float>.Count;
            }

            sum += Vector256.Sum((a + b) + (c + d));
        }

        for (; i < sigmoids.Length; i++)
        {
            sum += sigmoids[i];
        }

        return sum;
    }

    private sealed class Scratch : IDisposable
    {
        public Scratch(MaskTiles tiles)
        {
            var width = tiles.Upsampler.Width;
            Spans = EngineArrayPool<int>.Shared.Rent(3 * tiles.TileColumns.Count);
            Edges = EngineArrayPool<int>.Shared.Rent(2 * tiles.TileColumns.Count);
            Values = EngineArrayPool<float>.Shared.Rent(width);
            Sigmoids = EngineArrayPool<float>.Shared.Rent(width);
            Blend = EngineArrayPool<float>.Shared.Rent(tiles.Upsampler.ScratchLength);
            var segments = tiles.Upsampler.Columns.Segments;
            Grid = EngineArrayPool<float>.Shared.Rent((segments?.Stride ?? 0) + 1);
            Failed = EngineArrayPool<int>.Shared.Rent(segments?.Count ?? 0);
            Summed = EngineArrayPool<int>.Shared.Rent(segments?.Stride ?? 0);
            SegmentValues = EngineArrayPool<float>.Shared.Rent(segments is null ? 0 : width);
        }

        public float[] Grid { get; }

        public int[] Failed { get; }

        public float[] SegmentValues { get; }

        // The segments a tile row sums by series: SummedCount of them from SummedFirst, marked (all bits)
        // in Summed from index 0, with sixteen unmarked ones after.
        public int[] Summed { get; }

        public int SummedFirst { get; set; }

        public int SummedCount { get; set; }

        public int SummedSpans { get; set; }

        public int[] Spans { get; }

        public int[] Edges { get; }

        public float[] Values { get; }

        public float[] Sigmoids { get; }

        public float[] Blend { get; }

        public void Dispose()
        {
            EngineArrayPool<int>.Shared.Return(Spans);
            EngineArrayPool<int>.Shared.Return(Edges);
            EngineArrayPool<float>.Shared.Return(Values);
            EngineArrayPool<float>.Shared.Return(Sigmoids);
            EngineArrayPool<float>.Shared.Return(Blend);
            EngineArrayPool<float>.Shared.Return(Grid);
            EngineArrayPool<int>.Shared.Return(Failed);
            EngineArrayPool<float>.Shared.Return(SegmentValues);
            EngineArrayPool<int>.Shared.Return(Summed);
        }
    }
}
