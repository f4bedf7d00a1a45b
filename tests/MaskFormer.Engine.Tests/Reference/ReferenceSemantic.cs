using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Tests.Reference;

/// <summary>
/// detectron2 MaskFormer semantic_inference, literally: upsample every query's mask to the padded
/// size, crop, upsample to the original size, then softmax/sigmoid/einsum/argmax in float64.
/// Returns the labels and each pixel's margin between the best and second-best class score.
/// </summary>
internal static class ReferenceSemantic
{
    public static (int[] Labels, double[] Margins) Run(ModelOutput output, ResizePlan plan) =>
        Run(output.ClassLogits.ToArray(), output.MaskLogits.ToArray(), output.Queries, output.ClassesWithNoObject, output.MaskHeight, output.MaskWidth, plan);

    public static (int[] Labels, double[] Margins) Run(float[] classLogits, float[] maskLogits, int queries, int classesWithNoObject, int maskHeight, int maskWidth, ResizePlan plan)
    {
        var classes = classesWithNoObject - 1;
        var height = plan.OriginalHeight;
        var width = plan.OriginalWidth;
        var scores = new double[classes, height, width];
        for (var q = 0; q < queries; q++)
        {
            var probabilities = ReferenceMath.Softmax(classLogits.AsSpan(q * classesWithNoObject, classesWithNoObject));
            var mask = UpsampleMask(maskLogits, q, maskHeight, maskWidth, plan);
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    var sigmoid = ReferenceMath.Sigmoid(mask[y, x]);
                    for (var c = 0; c < classes; c++)
                    {
                        scores[c, y, x] += probabilities[c] * sigmoid;
                    }
                }
            }
        }

        var labels = new int[height * width];
        var margins = new double[height * width];
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var best = 0;
                for (var c = 1; c < classes; c++)
                {
                    if (scores[c, y, x] > scores[best, y, x])
                    {
                        best = c;
                    }
                }

                var second = double.NegativeInfinity;
                for (var c = 0; c < classes; c++)
                {
                    if (c != best)
                    {
                        second = Math.Max(second, scores[c, y, x]);
                    }
                }

                labels[(y * width) + x] = best;
                margins[(y * width) + x] = scores[best, y, x] - second;
            }
        }

        return (labels, margins);
    }

    public static double[,] UpsampleMask(float[] maskLogits, int query, int maskHeight, int maskWidth, ResizePlan plan)
    {
        var plane = new double[maskHeight, maskWidth];
        for (var y = 0; y < maskHeight; y++)
        {
            for (var x = 0; x < maskWidth; x++)
            {
                plane[y, x] = maskLogits[(query * maskHeight * maskWidth) + (y * maskWidth) + x];
            }
        }

        var padded = ReferenceMath.Bilinear(plane, plan.PaddedHeight, plan.PaddedWidth);
        var cropped = ReferenceMath.Crop(padded, plan.ResizedHeight, plan.ResizedWidth);
        return ReferenceMath.Bilinear(cropped, plan.OriginalHeight, plan.OriginalWidth);
    }
}
