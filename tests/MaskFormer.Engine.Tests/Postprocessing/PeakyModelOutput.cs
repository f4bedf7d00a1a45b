using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Tests.Postprocessing;

/// <summary>
/// Random model outputs shaped so the panoptic and instance rules have something to decide: uniform
/// logits alone give class probabilities that rarely pass a threshold, so some queries get one class
/// (sometimes "no object") pushed well ahead; half the masks are a noisy rectangle, like an object,
/// and the rest noise with a per-query bias so some are mostly in and others mostly out.
/// </summary>
internal static class PeakyModelOutput
{
    public static ModelOutput Create(Random random, int queries, int classesWithNoObject, ResizePlan plan)
    {
        var output = new ModelOutput(queries, classesWithNoObject, plan.PaddedHeight / 4, plan.PaddedWidth / 4);
        var classLogits = output.ClassLogits;
        for (var q = 0; q < queries; q++)
        {
            var row = classLogits.Slice(q * classesWithNoObject, classesWithNoObject);
            for (var c = 0; c < row.Length; c++)
            {
                row[c] = (float)((random.NextDouble() * 8) - 4);
            }

            if (random.Next(3) != 0)
            {
                row[random.Next(row.Length)] += (float)(3 + (random.NextDouble() * 8));
            }
        }

        var (height, width) = (output.MaskHeight, output.MaskWidth);
        var maskLogits = output.MaskLogits;
        for (var q = 0; q < queries; q++)
        {
            var plane = maskLogits.Slice(q * height * width, height * width);
            var bias = (random.NextDouble() * 8) - 4;
            var (top, left) = (random.Next(height), random.Next(width));
            var (bottom, right) = (random.Next(top, height), random.Next(left, width));
            var isBlob = random.Next(2) == 0;
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    var inside = y >= top && y <= bottom && x >= left && x <= right;
                    plane[(y * width) + x] = isBlob
                        ? (float)((inside ? 4 : -4) + (random.NextDouble() * 6) - 3)
                        : (float)(bias + (random.NextDouble() * 12) - 6);
                }
            }
        }

        return output;
    }

    public static ModelLabel[] Labels(Random random, int classes) =>
        [.. Enumerable.Range(0, classes).Select(c => new ModelLabel(c, $"class{c}", random.Next(2) == 0))];
}
