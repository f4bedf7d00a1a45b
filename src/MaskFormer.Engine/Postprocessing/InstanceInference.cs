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
/// Masks are measured tile by tile (<see cref="TiledMask"/>) as row runs: the same pixels as the dense
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

        // Top-k first, then the things-only filter, as the reference does.
        var top = TopPairs.Select(probabilities, output.Queries, classes, options.TopK(output.Queries))
            .Where(c => !thingsOnly || labels[c.Label].IsThing)
            .ToArray();

        var queries = top.Select(t => t.Query).Distinct().ToArray();
        var measured = TiledMask.Measure(tiles, queries);
        var handedOver = new bool[queries.Length];
        try
        {
            var instances = new List<InstanceMask>();
            foreach (var (query, label, probability) in top)
            {
                var q = Array.IndexOf(queries, query);
                var mask = measured[q];
                var score = probability * (float)(mask.SigmoidSum / (mask.Area + 1e-6));
                if (score <= options.InstanceScoreThreshold)
                {
                    continue;
                }

                // The first instance of a query takes its runs; only a query scored under several
                // classes needs copies.
                var runs = handedOver[q] ? mask.Runs.Copy() : mask.Runs;
                handedOver[q] = true;
                instances.Add(new InstanceMask(label, score, mask.Area, mask.Box, runs) { Query = query });
            }

            return [.. instances.OrderByDescending(i => i.Score)];
        }
        finally
        {
            for (var q = 0; q < queries.Length; q++)
            {
                if (!handedOver[q])
                {
                    measured[q].Runs.Dispose();
                }
            }
        }
    }
}
