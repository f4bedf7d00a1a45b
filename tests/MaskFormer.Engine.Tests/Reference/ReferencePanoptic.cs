using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Tests.Reference;

/// <summary>One segment of the reference's panoptic result, with its area and COCO box from the final map.</summary>
internal sealed record ReferenceSegment(int Id, int CategoryId, bool IsThing, double Score, long Area, int X, int Y, int Width, int Height);

/// <summary>
/// The reference's answer; how many kept queries the overlap check dropped and how many stuff queries
/// merged into an earlier segment (so tests can show both paths ran); and a description of the first
/// decision whose float64 margin is too small for float32 arithmetic to be sure of (null when none).
/// </summary>
internal sealed record ReferencePanopticResult(int[] SegmentIds, IReadOnlyList<ReferenceSegment> Segments, int DroppedByOverlap, int MergedStuff, string? Ambiguity);

/// <summary>
/// detectron2 MaskFormer's <c>panoptic_inference</c>, and the Mask2Former variant, written literally in
/// float64 from the Python: softmax → max, keep, prob masks, argmax, the per-query loop with the
/// overlap check and stuff memory. Upsampling is <see cref="ReferenceSemantic.UpsampleMask"/>.
/// </summary>
internal static class ReferencePanoptic
{
    /// <summary>Closer than this, two probabilities (or a probability and a threshold) are a tie.</summary>
    public const double ProbabilityMargin = 1e-6;

    /// <summary>
    /// Closer than this relative to the larger, two per-pixel prob-mask values are a tie for the argmax
    /// (float32 upsampling and sigmoid err by about 1e-6 relative).
    /// </summary>
    public const double PixelMargin = 1e-5;

    /// <summary>An upsampled logit closer than this to 0 has a sigmoid too close to 0.5 to call.</summary>
    public const double LogitMargin = 1e-5;

    /// <summary>An area ratio closer than this to the overlap threshold is a tie.</summary>
    public const double RatioMargin = 1e-6;

    public static ReferencePanopticResult Run(ModelOutput output, ResizePlan plan, bool[] isThing, bool mask2Former, double objectMaskThreshold, double overlapThreshold) =>
        Run(output.ClassLogits.ToArray(), output.MaskLogits.ToArray(), output.Queries, output.ClassesWithNoObject, output.MaskHeight, output.MaskWidth, plan, isThing, mask2Former, objectMaskThreshold, overlapThreshold);

    public static ReferencePanopticResult Run(
        float[] classLogits,
        float[] maskLogits,
        int queries,
        int classesWithNoObject,
        int maskHeight,
        int maskWidth,
        ResizePlan plan,
        bool[] isThing,
        bool mask2Former,
        double objectMaskThreshold,
        double overlapThreshold)
    {
        var noObject = classesWithNoObject - 1;
        var height = plan.OriginalHeight;
        var width = plan.OriginalWidth;
        string? ambiguity = null;
        void Flag(string what) => ambiguity ??= what;

        // scores, labels = F.softmax(mask_cls, dim=-1).max(-1); keep = labels.ne(K) & (scores > threshold)
        var keptQueries = new List<int>();
        var scores = new double[queries];
        var labels = new int[queries];
        for (var q = 0; q < queries; q++)
        {
            var probabilities = ReferenceMath.Softmax(classLogits.AsSpan(q * classesWithNoObject, classesWithNoObject));
            var best = 0;
            for (var c = 1; c < classesWithNoObject; c++)
            {
                if (probabilities[c] > probabilities[best])
                {
                    best = c;
                }
            }

            for (var c = 0; c < classesWithNoObject; c++)
            {
                if (c != best && probabilities[best] - probabilities[c] < ProbabilityMargin)
                {
                    Flag($"query {q}: classes {best} and {c} tie");
                }
            }

            scores[q] = probabilities[best];
            labels[q] = best;
            if (best != noObject && Math.Abs(scores[q] - objectMaskThreshold) < ProbabilityMargin)
            {
                Flag($"query {q}: score {scores[q]} is at the threshold");
            }

            if (best != noObject && scores[q] > objectMaskThreshold)
            {
                keptQueries.Add(q);
            }
        }

        var panoptic = new int[height * width];
        var segments = new List<ReferenceSegment>();
        if (keptQueries.Count == 0)
        {
            return new ReferencePanopticResult(panoptic, segments, 0, 0, ambiguity);
        }

        // cur_masks = mask_pred.sigmoid()[keep]; cur_prob_masks = cur_scores.view(-1, 1, 1) * cur_masks
        var kept = keptQueries.Count;
        var curMasks = new double[kept][,];
        for (var k = 0; k < kept; k++)
        {
            var logits = ReferenceSemantic.UpsampleMask(maskLogits, keptQueries[k], maskHeight, maskWidth, plan);
            curMasks[k] = new double[height, width];
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    if (Math.Abs(logits[y, x]) < LogitMargin)
                    {
                        Flag($"query {keptQueries[k]}: sigmoid at pixel {x},{y} is 0.5 within float32 error");
                    }

                    curMasks[k][y, x] = ReferenceMath.Sigmoid(logits[y, x]);
                }
            }
        }

        // cur_mask_ids = cur_prob_masks.argmax(0), first max on ties
        var curMaskIds = new int[height, width];
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var best = 0;
                for (var k = 1; k < kept; k++)
                {
                    if (scores[keptQueries[k]] * curMasks[k][y, x] > scores[keptQueries[best]] * curMasks[best][y, x])
                    {
                        best = k;
                    }
                }

                var top = scores[keptQueries[best]] * curMasks[best][y, x];
                for (var k = 0; k < kept; k++)
                {
                    var gap = top - (scores[keptQueries[k]] * curMasks[k][y, x]);
                    if (k != best && gap < PixelMargin * top)
                    {
                        Flag($"pixel {x},{y}: kept queries {best} and {k} tie");
                    }
                }

                curMaskIds[y, x] = best;
            }
        }

        var (droppedByOverlap, mergedStuff) = (0, 0);
        var stuffMemory = new Dictionary<int, int>();
        var currentSegmentId = 0;
        var segmentInfo = new List<(int Id, int Category, bool IsThing, double Score)>();
        for (var k = 0; k < kept; k++)
        {
            var predClass = labels[keptQueries[k]];
            var thing = isThing[predClass];
            long maskArea = 0;
            long originalArea = 0;
            long maskSum = 0;
            var mask = new bool[height, width];
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    var won = curMaskIds[y, x] == k;
                    var inside = curMasks[k][y, x] >= 0.5;
                    maskArea += won ? 1 : 0;
                    originalArea += inside ? 1 : 0;
                    mask[y, x] = mask2Former ? won && inside : won;
                    maskSum += mask[y, x] ? 1 : 0;
                }
            }

            if (maskArea > 0 && originalArea > 0 && (!mask2Former || maskSum > 0))
            {
                var ratio = (double)maskArea / originalArea;
                if (Math.Abs(ratio - overlapThreshold) < RatioMargin)
                {
                    Flag($"query {keptQueries[k]}: area ratio {ratio} is at the overlap threshold");
                }

                if (ratio < overlapThreshold)
                {
                    droppedByOverlap++;
                    continue;
                }

                if (!thing)
                {
                    if (stuffMemory.TryGetValue(predClass, out var existing))
                    {
                        Paint(panoptic, mask, existing);
                        mergedStuff++;
                        continue;
                    }

                    stuffMemory[predClass] = currentSegmentId + 1;
                }

                currentSegmentId++;
                Paint(panoptic, mask, currentSegmentId);
                segmentInfo.Add((currentSegmentId, predClass, thing, scores[keptQueries[k]]));
            }
        }

        foreach (var (id, category, thing, score) in segmentInfo)
        {
            long area = 0;
            var (minX, minY, maxX, maxY) = (int.MaxValue, int.MaxValue, -1, -1);
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    if (panoptic[(y * width) + x] == id)
                    {
                        area++;
                        (minX, minY, maxX, maxY) = (Math.Min(minX, x), Math.Min(minY, y), Math.Max(maxX, x), Math.Max(maxY, y));
                    }
                }
            }

            segments.Add(area == 0
                ? new ReferenceSegment(id, category, thing, score, 0, 0, 0, 0, 0)
                : new ReferenceSegment(id, category, thing, score, area, minX, minY, maxX - minX + 1, maxY - minY + 1));
        }

        return new ReferencePanopticResult(panoptic, segments, droppedByOverlap, mergedStuff, ambiguity);
    }

    private static void Paint(int[] panoptic, bool[,] mask, int id)
    {
        var width = mask.GetLength(1);
        for (var y = 0; y < mask.GetLength(0); y++)
        {
            for (var x = 0; x < width; x++)
            {
                if (mask[y, x])
                {
                    panoptic[(y * width) + x] = id;
                }
            }
        }
    }
}
