namespace MaskFormer.Engine.Tests.Reference;

/// <summary>
/// transformers' MaskFormer <c>post_process_semantic_segmentation</c> and
/// <c>post_process_instance_segmentation</c> (image_processing_maskformer.py), transcribed in float64
/// plain loops: the oracle for <c>HuggingFaceInference</c>.
/// </summary>
internal static class ReferenceHuggingFace
{
    /// <summary>Per pixel of the target: the class scores (einsum at mask size, then bilinear), for argmax and margin.</summary>
    public static double[,,] SemanticScores(float[] classLogits, float[] maskLogits, int queries, int classesWithNoObject, int maskHeight, int maskWidth, int height, int width)
    {
        var classes = classesWithNoObject - 1;
        var low = new double[classes, maskHeight, maskWidth];
        for (var q = 0; q < queries; q++)
        {
            var probabilities = Softmax(classLogits.AsSpan(q * classesWithNoObject, classesWithNoObject));
            for (var y = 0; y < maskHeight; y++)
            {
                for (var x = 0; x < maskWidth; x++)
                {
                    var m = 1 / (1 + Math.Exp(-maskLogits[(q * maskHeight * maskWidth) + (y * maskWidth) + x]));
                    for (var c = 0; c < classes; c++)
                    {
                        low[c, y, x] += probabilities[c] * m;
                    }
                }
            }
        }

        var result = new double[classes, height, width];
        for (var c = 0; c < classes; c++)
        {
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    result[c, y, x] = Bilinear(low, c, maskHeight, maskWidth, y, x, height, width);
                }
            }
        }

        return result;
    }

    /// <summary>The kept instances: (label, score, mask at the target size), in no particular order.</summary>
    public static List<(int Label, double Score, bool[,] Mask)> Instances(float[] classLogits, float[] maskLogits, int queries, int classesWithNoObject, int maskHeight, int maskWidth, int height, int width, double threshold)
    {
        var classes = classesWithNoObject - 1;
        var pairs = new List<(int Query, int Label, double Probability)>();
        for (var q = 0; q < queries; q++)
        {
            var probabilities = Softmax(classLogits.AsSpan(q * classesWithNoObject, classesWithNoObject));
            for (var c = 0; c < classes; c++)
            {
                pairs.Add((q, c, probabilities[c]));
            }
        }

        var results = new List<(int, double, bool[,])>();
        foreach (var (query, label, probability) in pairs.OrderByDescending(p => p.Probability).Take(queries))
        {
            double inside = 0, count = 0;
            for (var i = 0; i < maskHeight * maskWidth; i++)
            {
                var logit = maskLogits[(query * maskHeight * maskWidth) + i];
                if (logit > 0)
                {
                    inside += 1 / (1 + Math.Exp(-logit));
                    count++;
                }
            }

            var score = probability * inside / (count + 1e-6);
            var mask = new bool[height, width];
            var any = false;
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    var sy = Math.Min((int)Math.Floor(y * ((float)maskHeight / height)), maskHeight - 1);
                    var sx = Math.Min((int)Math.Floor(x * ((float)maskWidth / width)), maskWidth - 1);
                    mask[y, x] = maskLogits[(query * maskHeight * maskWidth) + (sy * maskWidth) + sx] > 0;
                    any |= mask[y, x];
                }
            }

            if (any && score >= threshold)
            {
                results.Add((label, score, mask));
            }
        }

        return results;
    }

    private static double[] Softmax(ReadOnlySpan<float> logits)
    {
        var max = double.NegativeInfinity;
        foreach (var l in logits)
        {
            max = Math.Max(max, l);
        }

        var exps = new double[logits.Length];
        for (var i = 0; i < logits.Length; i++)
        {
            exps[i] = Math.Exp(logits[i] - max);
        }

        var sum = exps.Sum();
        return [.. exps.Select(e => e / sum)];
    }

    // F.interpolate(mode="bilinear", align_corners=False): source = (i + 0.5)·in/out − 0.5, clamped at 0.
    private static double Bilinear(double[,,] plane, int c, int inHeight, int inWidth, int y, int x, int outHeight, int outWidth)
    {
        var sy = Math.Max(((y + 0.5) * inHeight / outHeight) - 0.5, 0);
        var sx = Math.Max(((x + 0.5) * inWidth / outWidth) - 0.5, 0);
        var (y0, x0) = ((int)sy, (int)sx);
        var (y1, x1) = (Math.Min(y0 + 1, inHeight - 1), Math.Min(x0 + 1, inWidth - 1));
        var (ty, tx) = (sy - y0, sx - x0);
        return ((1 - ty) * (((1 - tx) * plane[c, y0, x0]) + (tx * plane[c, y0, x1])))
            + (ty * (((1 - tx) * plane[c, y1, x0]) + (tx * plane[c, y1, x1])));
    }
}
