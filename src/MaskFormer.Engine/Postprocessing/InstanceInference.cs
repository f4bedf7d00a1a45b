using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Mask2Former's <c>instance_inference</c> (detectron2): top-k over queries × classes of the class
/// probabilities (without "no object"); binary mask = mask logit &gt; 0; score = class probability ×
/// the mean sigmoid inside the binary mask; optionally things only and a score threshold.
/// Results are sorted best first (ties by query, then class).
/// </summary>
/// <remarks>
/// Masks are measured tile by tile (<see cref="TiledMask"/>): the same pixels as the dense
/// computation, bit for bit; the score's mean sigmoid within 1e-6.
/// </remarks>
public static class InstanceInference
{
    /// <summary>Computes the instances at the original image size.</summary>
    public static IReadOnlyList<InstanceMask> Run(ModelOutput output, ResizePlan plan, IReadOnlyList<ModelLabel> labels, bool thingsOnly, PostprocessOptions options)
    {
        using var tiles = new MaskTiles(output, plan);
        return Run(tiles, labels, thingsOnly, options);
    }

    internal static IReadOnlyList<InstanceMask> Run(MaskTiles tiles, IReadOnlyList<ModelLabel> labels, bool thingsOnly, PostprocessOptions options)
    {
        var output = tiles.Output;
        var probabilities = ClassProbabilities.Softmax(output);
        var classes = output.ClassesWithNoObject - 1;
        var candidates = new List<(int Query, int Label, float Probability)>(output.Queries * classes);
        for (var q = 0; q < output.Queries; q++)
        {
            for (var c = 0; c < classes; c++)
            {
                candidates.Add((q, c, probabilities[(q * (classes + 1)) + c]));
            }
        }

        // Top-k first, then the things-only filter, as the reference does.
        var top = candidates
            .OrderByDescending(c => c.Probability)
            .ThenBy(c => c.Query)
            .ThenBy(c => c.Label)
            .Take(Math.Min(options.InstanceTopK, candidates.Count))
            .Where(c => !thingsOnly || labels[c.Label].IsThing)
            .ToArray();

        var queries = top.Select(t => t.Query).Distinct().ToArray();
        var masks = queries.ToDictionary(q => q, q => TiledMask.Measure(tiles, q));
        var handedOver = new HashSet<int>();
        try
        {
            var instances = new List<InstanceMask>();
            foreach (var (query, label, probability) in top)
            {
                var measured = masks[query];
                var score = probability * (float)(measured.SigmoidSum / (measured.Area + 1e-6));
                if (score <= options.InstanceScoreThreshold)
                {
                    continue;
                }

                // The first instance of a query takes its mask; only a query scored under several
                // classes needs copies.
                var mask = handedOver.Add(query) ? measured.Mask : Copy(measured.Mask);
                instances.Add(new InstanceMask(label, score, measured.Area, measured.Box, mask));
            }

            return [.. instances.OrderByDescending(i => i.Score)];
        }
        finally
        {
            foreach (var (query, measured) in masks)
            {
                if (!handedOver.Contains(query))
                {
                    measured.Mask.Dispose();
                }
            }
        }
    }

    private static BinaryMask Copy(BinaryMask source)
    {
        var copy = new BinaryMask(source.Width, source.Height);
        source.Pixels.CopyTo(copy.Pixels);
        return copy;
    }
}
