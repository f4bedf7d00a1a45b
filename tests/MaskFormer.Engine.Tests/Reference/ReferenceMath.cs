namespace MaskFormer.Engine.Tests.Reference;

/// <summary>
/// Plain, obviously-correct float64 versions of the engine's numerics: the oracle the fast code is
/// checked against. Written from the PyTorch and detectron2 definitions, not from the engine's code.
/// </summary>
internal static class ReferenceMath
{
    /// <summary>torch F.interpolate(mode="bilinear", align_corners=False) on one [h, w] plane.</summary>
    public static double[,] Bilinear(double[,] input, int outHeight, int outWidth)
    {
        var inHeight = input.GetLength(0);
        var inWidth = input.GetLength(1);
        var output = new double[outHeight, outWidth];
        for (var y = 0; y < outHeight; y++)
        {
            var (y0, y1, ly) = SourceIndex(y, inHeight, outHeight);
            for (var x = 0; x < outWidth; x++)
            {
                var (x0, x1, lx) = SourceIndex(x, inWidth, outWidth);
                output[y, x] = ((1 - ly) * (((1 - lx) * input[y0, x0]) + (lx * input[y0, x1])))
                    + (ly * (((1 - lx) * input[y1, x0]) + (lx * input[y1, x1])));
            }
        }

        return output;
    }

    public static double[,] Crop(double[,] input, int height, int width)
    {
        var output = new double[height, width];
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                output[y, x] = input[y, x];
            }
        }

        return output;
    }

    public static double[] Softmax(ReadOnlySpan<float> logits)
    {
        var max = double.NegativeInfinity;
        foreach (var value in logits)
        {
            max = Math.Max(max, value);
        }

        var result = new double[logits.Length];
        var sum = 0.0;
        for (var i = 0; i < logits.Length; i++)
        {
            result[i] = Math.Exp(logits[i] - max);
            sum += result[i];
        }

        for (var i = 0; i < result.Length; i++)
        {
            result[i] /= sum;
        }

        return result;
    }

    public static double Sigmoid(double x) => 1.0 / (1.0 + Math.Exp(-x));

    private static (int Lower, int Upper, double Weight) SourceIndex(int target, int inSize, int outSize)
    {
        var source = Math.Max(((target + 0.5) * inSize / outSize) - 0.5, 0.0);
        var lower = (int)Math.Floor(source);
        var upper = Math.Min(lower + 1, inSize - 1);
        return (lower, upper, source - lower);
    }
}
