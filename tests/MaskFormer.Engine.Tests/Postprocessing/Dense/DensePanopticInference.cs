using System.Buffers;
using System.Numerics.Tensors;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>
/// The dense panoptic inference the service ran before tiles, kept verbatim as the oracle for the
/// tiled <see cref="PanopticInference"/>. MaskFormer's <c>panoptic_inference</c> (detectron2): keep queries whose best class is not "no
/// object" and scores above the threshold; each pixel goes to the kept query with the highest
/// score · sigmoid(mask); a query whose won area over its own mask area (sigmoid ≥ 0.5) is below the
/// overlap threshold is dropped; stuff of one class merges into one segment. For Mask2Former a
/// pixel also needs sigmoid ≥ 0.5 for its query, as that reference does.
/// </summary>
internal static class DensePanopticInference
{
    private const ushort Unassigned = ushort.MaxValue;
    private const ushort BelowHalf = 0x8000;

    public static PanopticResult Run(ModelOutput output, ResizePlan plan, IReadOnlyList<ModelLabel> labels, bool isMask2Former, PostprocessOptions options)
    {
        var upsampler = new MaskUpsampler(output, plan);
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

        // Pass 1: each pixel's winning kept query (its index, with a flag when that query's sigmoid is
        // below 0.5), and per query the won area and its own mask area.
        var totals = new AreaCounts(kept.Count);
        var sync = new object();
        Parallel.For(0, height, RowParallelism.For(width, height, kept.Count), () => new AreaCounts(kept.Count), (y, _, counts) =>
        {
            AssignRow(upsampler, kept, y, ids.Row(y), counts);
            return counts;
        }, counts =>
        {
            lock (sync)
            {
                totals.Add(counts);
            }
        });

        // Decide the segments in query order, as the reference's loop does.
        // detectron2 compares mask_area / original_area with the threshold in doubles; read the float
        // setting as the decimal it was written as (0.8f → 0.8), or a ratio of exactly 0.8 would be "below".
        var overlapThreshold = (double)(decimal)options.OverlapThreshold;
        var segmentOf = new int[kept.Count];
        var stuffSegment = new Dictionary<int, int>();
        var scores = new List<(int Id, int Label, float Score)>();
        for (var k = 0; k < kept.Count; k++)
        {
            var (_, label, score) = kept[k];
            var (won, mask) = (totals.Won[k], totals.Mask[k]);
            if (won == 0 || mask == 0 || (isMask2Former && totals.WonInsideMask[k] == 0) || won / (double)mask < overlapThreshold)
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

        // Pass 2: write segment ids and measure each segment.
        var areasById = new long[scores.Count + 1];
        var boxes = new PixelBox.Builder[scores.Count + 1];
        for (var y = 0; y < height; y++)
        {
            var row = ids.Row(y);
            for (var x = 0; x < width; x++)
            {
                var value = row[x];
                var id = value == Unassigned || (isMask2Former && (value & BelowHalf) != 0) ? 0 : segmentOf[value & ~BelowHalf];
                row[x] = (ushort)id;
                if (id != 0)
                {
                    areasById[id]++;
                    boxes[id].Add(x, y);
                }
            }
        }

        var segments = scores
            .Where(s => areasById[s.Id] > 0)
            .Select(s => new PanopticSegment(s.Id, s.Label, labels[s.Label].IsThing, s.Score, areasById[s.Id], boxes[s.Id].Build()))
            .ToArray();
        return new PanopticResult(ids, segments);
    }

    private static void AssignRow(MaskUpsampler upsampler, List<(int Query, int Label, float Score)> kept, int y, Span<ushort> assignment, AreaCounts counts)
    {
        var width = upsampler.Width;
        var scratch = ArrayPool<float>.Shared.Rent(upsampler.ScratchLength + (2 * width));
        try
        {
            var rowScratch = scratch.AsSpan(0, upsampler.ScratchLength);
            var sigmoid = scratch.AsSpan(upsampler.ScratchLength, width);
            var best = scratch.AsSpan(upsampler.ScratchLength + width, width);
            best.Fill(float.NegativeInfinity);
            assignment.Fill(Unassigned);
            for (var k = 0; k < kept.Count; k++)
            {
                upsampler.ComputeRow(kept[k].Query, y, sigmoid, rowScratch);
                TensorPrimitives.Sigmoid(sigmoid, sigmoid);
                var score = kept[k].Score;
                for (var x = 0; x < width; x++)
                {
                    var isMask = sigmoid[x] >= 0.5f;
                    if (isMask)
                    {
                        counts.Mask[k]++;
                    }

                    // Strictly greater: the first kept query wins a tie, as torch.argmax does, for which
                    // NaN is greater than any number (the first NaN wins).
                    var probability = score * sigmoid[x];
                    if (probability > best[x] || (float.IsNaN(probability) && !float.IsNaN(best[x])))
                    {
                        best[x] = probability;
                        assignment[x] = (ushort)(isMask ? k : k | BelowHalf);
                    }
                }
            }

            foreach (var value in assignment)
            {
                counts.Won[value & ~BelowHalf]++;
                if ((value & BelowHalf) == 0)
                {
                    counts.WonInsideMask[value]++;
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scratch);
        }
    }

    // Per kept query: pixels won, pixels of its own mask (sigmoid >= 0.5), and pixels won inside it.
    private sealed class AreaCounts(int queries)
    {
        public long[] Won { get; } = new long[queries];

        public long[] Mask { get; } = new long[queries];

        public long[] WonInsideMask { get; } = new long[queries];

        public void Add(AreaCounts other)
        {
            for (var k = 0; k < Won.Length; k++)
            {
                Won[k] += other.Won[k];
                Mask[k] += other.Mask[k];
                WonInsideMask[k] += other.WonInsideMask[k];
            }
        }
    }
}
