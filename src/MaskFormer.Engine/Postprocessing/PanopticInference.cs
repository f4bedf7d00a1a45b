using System.Numerics.Tensors;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// MaskFormer's <c>panoptic_inference</c> (detectron2): keep queries whose best class is not "no
/// object" and scores above the threshold; each pixel goes to the kept query with the highest
/// score · sigmoid(mask); a query whose won area over its own mask area (sigmoid ≥ 0.5) is below the
/// overlap threshold is dropped; stuff of one class merges into one segment. For Mask2Former a
/// pixel also needs sigmoid ≥ 0.5 for its query, as that reference does.
/// </summary>
/// <remarks>
/// Tile by tile (<see cref="PanopticTileRow"/>): a tile takes a query whole when that query's lowest
/// score · sigmoid beats every other kept query's highest (and, for Mask2Former, that query's mask is
/// on one side of 0.5 there); elsewhere only the queries still in question are computed per pixel,
/// with the dense computation's float32 arithmetic, so the map, areas and boxes are the same bit for
/// bit. A query's own mask area is counted per pixel only when the bounds on it leave its drop open.
/// </remarks>
public static class PanopticInference
{
    internal const ushort Unassigned = ushort.MaxValue;
    internal const ushort BelowHalf = 0x8000;

    // A pass-2 span of mixed tiles, read pixel by pixel.
    private const int Mixed = -1;

    /// <summary>Computes the panoptic segmentation at the original image size.</summary>
    public static PanopticResult Run(ModelOutput output, ResizePlan plan, IReadOnlyList<ModelLabel> labels, bool isMask2Former, PostprocessOptions options)
    {
        using var tiles = new MaskTiles(output, plan);
        return Run(tiles, labels, isMask2Former, options);
    }

    internal static PanopticResult Run(MaskTiles tiles, IReadOnlyList<ModelLabel> labels, bool isMask2Former, PostprocessOptions options)
        => Run(tiles, labels, isMask2Former, options, dropBounds: true, out _);

    /// <summary>
    /// The same, with or without the drop bounds (<see cref="PanopticDropBounds"/>), and the pixels they
    /// left void without computing them: for the tests, which compare the two.
    /// </summary>
    internal static PanopticResult Run(MaskTiles tiles, IReadOnlyList<ModelLabel> labels, bool isMask2Former, PostprocessOptions options, bool dropBounds, out long skippedPixels)
    {
        skippedPixels = 0;
        var output = tiles.Output;
        var upsampler = tiles.Upsampler;
        var probabilities = ClassProbabilities.Softmax(output);
        var classes = output.ClassesWithNoObject;
        var kept = new List<(int Query, int Label, float Score)>();
        for (var q = 0; q < output.Queries; q++)
        {
            var row = probabilities.AsSpan(q * classes, classes);
            var label = TensorPrimitives.IndexOfMax(row);
            if (label != classes - 1 && row[label] > options.ObjectMaskThreshold)
            {
                kept.Add((q, label, row[label]));
            }
        }

        var width = upsampler.Width;
        var height = upsampler.Height;
        var ids = new LabelMap(width, height);
        if (kept.Count == 0)
        {
            return new PanopticResult(ids, []);
        }

        // detectron2 compares mask_area / original_area with the threshold in doubles; read the float
        // setting as the decimal it was written as (0.8f → 0.8), or a ratio of exactly 0.8 would be "below".
        var overlapThreshold = (double)(decimal)options.OverlapThreshold;
        using var decisions = dropBounds ? new PanopticTileDecisions(tiles.TileRows.Count, tiles.TileColumns.Count) : null;
        var ownMasks = new AreaCounts(kept.Count);
        var drops = dropBounds ? MeasureDropBounds(tiles, kept, isMask2Former, overlapThreshold, decisions!, ownMasks) : null;

        // Pass 1: each pixel's winning kept query (its index, with a flag when that query's sigmoid is
        // below 0.5), and per query the won area and bounds on its own mask area; whole tiles where the
        // bounds decide, written only to the tile's entry in tileValues. Pixels are computed only where
        // the winner is open (segment boundaries), and own mask areas only where they decide a drop.
        var totals = new AreaCounts(kept.Count);
        var tileValues = new ushort[tiles.TileCount];
        var sync = new object();
        var work = (long)tiles.TileCount * kept.Count * 16;
        Parallel.For(0, tiles.TileRows.Count, RowParallelism.ForWork(work), () => new PanopticTileRow(tiles, kept, new AreaCounts(kept.Count), isMask2Former, drops, decisions), (row, _, solver) =>
        {
            solver.Solve(drops?.RowOrder[row] ?? row, ids, tileValues);
            return solver;
        }, solver =>
        {
            lock (sync)
            {
                totals.Add(solver.Counts);
            }

            solver.Dispose();
        });

        // Pass 1 took pass 0's tile decisions, and with them left the own mask areas known from the bounds to pass 0.
        if (decisions is not null)
        {
            totals.Add(ownMasks);
        }

        skippedPixels = totals.SkippedPixels;
        CountOpenMasks(tiles, kept, totals, isMask2Former, options);

        // Decide the segments in query order, as the reference's loop does. A query the drop bounds
        // dropped has its won area counted only in part, and is dropped here too: that part over the
        // whole own mask is below the threshold all the more.
        var segmentOf = new int[kept.Count];
        var stuffSegment = new Dictionary<int, int>();
        var scores = new List<(int Id, int Label, float Score)>();
        for (var k = 0; k < kept.Count; k++)
        {
            var (_, label, score) = kept[k];
            if (Drops(totals, k, totals.Mask[k], isMask2Former, overlapThreshold))
            {
                continue;
            }

            var isThing = labels[label].IsThing;
            if (!isThing && stuffSegment.TryGetValue(label, out var existing))
            {
                segmentOf[k] = existing;
                continue;
            }

            var id = scores.Count + 1;
            segmentOf[k] = id;
            scores.Add((id, label, score));
            if (!isThing)
            {
                stuffSegment[label] = id;
            }
        }

        // Pass 2: write segment ids and measure each segment, span by span: a span of decided tiles of
        // one segment is filled whole, a span of mixed tiles read run by run of equal values.
        var areasById = new long[scores.Count + 1];
        var boxes = new PixelBox.Builder[scores.Count + 1];
        var columns = tiles.TileColumns;
        var spans = new List<(int X0, int X1, int Id)>();
        int TileSegment(ushort value) => value == PanopticTileRow.Mixed ? Mixed : SegmentOf(value, segmentOf, isMask2Former);
        for (var row = 0; row < tiles.TileRows.Count; row++)
        {
            var (y0, y1) = (tiles.TileRows.Starts[row], tiles.TileRows.Starts[row + 1]);
            var values = tileValues.AsSpan(row * columns.Count, columns.Count);
            spans.Clear();
            for (var t = 0; t < columns.Count;)
            {
                var start = t;
                var id = TileSegment(values[t++]);
                while (t < columns.Count && TileSegment(values[t]) == id)
                {
                    t++;
                }

                var (x0, x1) = (columns.Starts[start], columns.Starts[t]);
                spans.Add((x0, x1, id));
                if (id > 0)
                {
                    areasById[id] += (long)(x1 - x0) * (y1 - y0);
                    boxes[id].Add(x0, y0);
                    boxes[id].Add(x1 - 1, y1 - 1);
                }
            }

            for (var y = y0; y < y1; y++)
            {
                var pixels = ids.Row(y);
                foreach (var (x0, x1, id) in spans)
                {
                    if (id != Mixed)
                    {
                        // The map starts cleared: void needs no writing.
                        if (id != 0)
                        {
                            pixels[x0..x1].Fill((ushort)id);
                        }

                        continue;
                    }

                    for (var x = x0; x < x1;)
                    {
                        var value = pixels[x];
                        var end = pixels[x..x1].IndexOfAnyExcept(value);
                        end = end < 0 ? x1 : x + end;
                        var segment = SegmentOf(value, segmentOf, isMask2Former);
                        pixels[x..end].Fill((ushort)segment);
                        if (segment != 0)
                        {
                            areasById[segment] += end - x;
                            boxes[segment].AddRun(x, end - 1, y);
                        }

                        x = end;
                    }
                }
            }
        }

        var segments = scores
            .Where(s => areasById[s.Id] > 0)
            .Select(s => new PanopticSegment(s.Id, s.Label, labels[s.Label].IsThing, s.Score, areasById[s.Id], boxes[s.Id].Build()))
            .ToArray();
        return new PanopticResult(ids, segments);
    }

    // The segment of a pass-1 value: 0 where no query won, or (Mask2Former) the winner's own mask is below 0.5.
    private static int SegmentOf(ushort value, int[] segmentOf, bool isMask2Former)
        => value == Unassigned || (isMask2Former && (value & BelowHalf) != 0) ? 0 : segmentOf[value & ~BelowHalf];

    // Pass 0: from the tile bounds alone, per kept query the most it can win and the least its own mask
    // covers, and per tile row the per-pixel work it holds (the order pass 1 takes the rows in); each tile's
    // decision kept in `decisions` for pass 1, and the own mask areas the bounds decide added to `ownMasks`.
    private static PanopticDropBounds MeasureDropBounds(MaskTiles tiles, List<(int Query, int Label, float Score)> kept, bool isMask2Former, double overlapThreshold, PanopticTileDecisions decisions, AreaCounts ownMasks)
    {
        var wonUpper = new long[kept.Count];
        var rowWork = new long[tiles.TileRows.Count];
        var sync = new object();
        var work = (long)tiles.TileCount * kept.Count;
        Parallel.For(0, tiles.TileRows.Count, RowParallelism.ForWork(work), () => (new PanopticTileRow(tiles, kept, new AreaCounts(kept.Count), isMask2Former, decisions: decisions), new long[kept.Count]), (row, _, local) =>
        {
            rowWork[row] = local.Item1.AddWonBounds(row, local.Item2);
            return local;
        }, local =>
        {
            lock (sync)
            {
                ownMasks.Add(local.Item1.Counts);
                for (var k = 0; k < wonUpper.Length; k++)
                {
                    wonUpper[k] += local.Item2[k];
                }
            }

            local.Item1.Dispose();
        });

        // A copy: the drop bounds raise their own as pass 1 computes pixels.
        return new PanopticDropBounds(wonUpper, (long[])ownMasks.Mask.Clone(), overlapThreshold, rowWork);
    }

    // detectron2's test for dropping a query, with its own mask area given.
    private static bool Drops(AreaCounts totals, int k, long mask, bool isMask2Former, double overlapThreshold)
    {
        var won = totals.Won[k];
        return won == 0 || mask == 0 || (isMask2Former && totals.WonInsideMask[k] == 0) || won / (double)mask < overlapThreshold;
    }

    // A query's own mask area is known from the bounds to within its undecided pixels. won / mask falls
    // as mask grows, so when both ends of that range (from 1 up) give the same answer, the exact area
    // changes nothing; only the queries where they differ are counted per pixel, in their undecided tiles.
    private static void CountOpenMasks(MaskTiles tiles, List<(int Query, int Label, float Score)> kept, AreaCounts totals, bool isMask2Former, PostprocessOptions options)
    {
        var overlapThreshold = (double)(decimal)options.OverlapThreshold;
        var open = new List<int>();
        for (var k = 0; k < kept.Count; k++)
        {
            var (lower, undecided) = (totals.Mask[k], totals.MaskUndecided[k]);
            if (undecided > 0 && totals.Won[k] > 0
                && (lower == 0 || Drops(totals, k, lower, isMask2Former, overlapThreshold) != Drops(totals, k, lower + undecided, isMask2Former, overlapThreshold)))
            {
                open.Add(k);
            }
        }

        if (open.Count == 0)
        {
            return;
        }

        var queries = open.ToArray();
        var counts = new long[queries.Length];
        var sync = new object();
        var work = (long)tiles.TileCount * queries.Length * 16;
        Parallel.For(0, tiles.TileRows.Count, RowParallelism.ForWork(work), () => (new PanopticTileRow(tiles, kept, new AreaCounts(kept.Count), isMask2Former), new long[queries.Length]), (row, _, local) =>
        {
            local.Item1.CountMask(row, queries, local.Item2);
            return local;
        }, local =>
        {
            lock (sync)
            {
                for (var i = 0; i < counts.Length; i++)
                {
                    counts[i] += local.Item2[i];
                }
            }

            local.Item1.Dispose();
        });

        for (var i = 0; i < queries.Length; i++)
        {
            totals.Mask[queries[i]] += counts[i];
        }
    }

    // Per kept query: pixels won, pixels of its own mask (sigmoid >= 0.5) known from the bounds, those
    // the bounds leave undecided, and pixels won inside its mask.
    internal sealed class AreaCounts(int queries)
    {
        public long[] Won { get; } = new long[queries];

        public long[] Mask { get; } = new long[queries];

        public long[] MaskUndecided { get; } = new long[queries];

        public long[] WonInsideMask { get; } = new long[queries];

        /// <summary>Pixels of tiles left void unsolved because only dropped queries could win them.</summary>
        public long SkippedPixels { get; set; }

        public void Add(AreaCounts other)
        {
            SkippedPixels += other.SkippedPixels;
            for (var k = 0; k < Won.Length; k++)
            {
                Won[k] += other.Won[k];
                Mask[k] += other.Mask[k];
                MaskUndecided[k] += other.MaskUndecided[k];
                WonInsideMask[k] += other.WonInsideMask[k];
            }
        }
    }
}
