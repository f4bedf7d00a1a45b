using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Tests.Reference;

/// <summary>One instance of the reference: the query it came from, its class, score and mask.</summary>
internal sealed record ReferenceInstanceMask(int Query, int Label, double Score, long Area, int X, int Y, int Width, int Height, bool[] Mask);

/// <summary>
/// The reference's instances, best first; how many top-k pairs the things-only filter and the score
/// threshold (on a non-empty mask) dropped; and the first too-close-to-call decision (or null).
/// </summary>
internal sealed record ReferenceInstanceResult(IReadOnlyList<ReferenceInstanceMask> Instances, int DroppedAsStuff, int DroppedByScore, string? Ambiguity);

/// <summary>
/// Mask2Former's <c>instance_inference</c> (detectron2), literally in float64: softmax without "no
/// object", top-k over the flattened [Q, K] scores, things-only filter after the top-k, mask = logit
/// &gt; 0, score = class probability × mean sigmoid inside the mask; then the service's score
/// threshold and best-first order.
/// </summary>
internal static class ReferenceInstance
{
    /// <summary>
    /// Closer than this fraction of the larger, two probabilities or scores (or a score and the threshold)
    /// are a tie. Relative, because float32 softmax and sigmoid err relative to the value: a confident
    /// model's "circle" score of 1e-9 for a triangle query is ordered as surely as 0.9 against 0.8.
    /// </summary>
    public const double ScoreMargin = 1e-6;

    /// <summary>Whether float32 arithmetic might order <paramref name="a"/> and <paramref name="b"/> either way.</summary>
    public static bool Tie(double a, double b) =>
        Math.Abs(a - b) < Math.Max(ScoreMargin * Math.Max(Math.Abs(a), Math.Abs(b)), FloatMinNormal);

    // Below float32's smallest normal value a probability may already have underflowed to 0.
    private const double FloatMinNormal = 1.1754943508222875e-38;

    /// <summary>An upsampled logit closer than this to 0 is on the mask's edge within float32 error.</summary>
    public const double LogitMargin = 1e-5;

    public static ReferenceInstanceResult Run(ModelOutput output, ResizePlan plan, bool[] isThing, bool thingsOnly, int topK, double scoreThreshold) =>
        Run(output.ClassLogits.ToArray(), output.MaskLogits.ToArray(), output.Queries, output.ClassesWithNoObject, output.MaskHeight, output.MaskWidth, plan, isThing, thingsOnly, topK, scoreThreshold);

    public static ReferenceInstanceResult Run(
        float[] classLogits,
        float[] maskLogits,
        int queries,
        int classesWithNoObject,
        int maskHeight,
        int maskWidth,
        ResizePlan plan,
        bool[] isThing,
        bool thingsOnly,
        int topK,
        double scoreThreshold)
    {
        var classes = classesWithNoObject - 1;
        var height = plan.OriginalHeight;
        var width = plan.OriginalWidth;
        string? ambiguity = null;
        void Flag(string what) => ambiguity ??= what;

        // scores = F.softmax(mask_cls, dim=-1)[:, :-1].flatten(0, 1)
        var flat = new double[queries * classes];
        for (var q = 0; q < queries; q++)
        {
            var probabilities = ReferenceMath.Softmax(classLogits.AsSpan(q * classesWithNoObject, classesWithNoObject));
            for (var c = 0; c < classes; c++)
            {
                flat[(q * classes) + c] = probabilities[c];
            }
        }

        // topk(k); which of two equal scores torch picks is unspecified, so a tie at the cut is flagged.
        var k = Math.Min(topK, flat.Length);
        var order = Enumerable.Range(0, flat.Length).OrderByDescending(i => flat[i]).ThenBy(i => i).ToArray();
        if (k < order.Length && Tie(flat[order[k - 1]], flat[order[k]]))
        {
            Flag($"top-k cut: scores {flat[order[k - 1]]} and {flat[order[k]]} tie");
        }

        var (droppedAsStuff, droppedByScore) = (0, 0);
        var instances = new List<ReferenceInstanceMask>();
        foreach (var index in order.Take(k))
        {
            var query = index / classes;
            var label = index % classes;
            if (thingsOnly && !isThing[label])
            {
                droppedAsStuff++;
                continue;
            }

            // pred_masks = (mask_pred > 0); mask_score = (sigmoid * pred_masks).sum() / (pred_masks.sum() + 1e-6)
            var logits = ReferenceSemantic.UpsampleMask(maskLogits, query, maskHeight, maskWidth, plan);
            var mask = new bool[height * width];
            long area = 0;
            var sigmoidSum = 0.0;
            var (minX, minY, maxX, maxY) = (int.MaxValue, int.MaxValue, -1, -1);
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    if (Math.Abs(logits[y, x]) < LogitMargin)
                    {
                        Flag($"query {query}: logit at pixel {x},{y} is 0 within float32 error");
                    }

                    if (logits[y, x] > 0)
                    {
                        mask[(y * width) + x] = true;
                        area++;
                        sigmoidSum += ReferenceMath.Sigmoid(logits[y, x]);
                        (minX, minY, maxX, maxY) = (Math.Min(minX, x), Math.Min(minY, y), Math.Max(maxX, x), Math.Max(maxY, y));
                    }
                }
            }

            var score = flat[index] * (sigmoidSum / (area + 1e-6));

            // An empty mask scores exactly 0 in any precision; anything else near the threshold is a tie.
            if (area > 0 && Tie(score, scoreThreshold))
            {
                Flag($"query {query} class {label}: score {score} is at the threshold");
            }

            if (score <= scoreThreshold)
            {
                droppedByScore += area > 0 ? 1 : 0;
                continue;
            }

            instances.Add(area == 0
                ? new ReferenceInstanceMask(query, label, score, 0, 0, 0, 0, 0, mask)
                : new ReferenceInstanceMask(query, label, score, area, minX, minY, maxX - minX + 1, maxY - minY + 1, mask));
        }

        var sorted = instances.OrderByDescending(i => i.Score).ToArray();
        for (var i = 1; i < sorted.Length; i++)
        {
            if (Tie(sorted[i - 1].Score, sorted[i].Score))
            {
                Flag($"instances {i - 1} and {i}: scores {sorted[i - 1].Score} and {sorted[i].Score} tie");
            }
        }

        return new ReferenceInstanceResult(sorted, droppedAsStuff, droppedByScore, ambiguity);
    }
}
