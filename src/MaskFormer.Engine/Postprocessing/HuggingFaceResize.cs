using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// The resizes transformers' <c>post_process_*</c> use: bilinear with half-pixel centres and no
/// antialiasing (<c>F.interpolate(mode="bilinear", align_corners=False)</c>) and nearest
/// (<c>mode="nearest"</c>). Bilinear weights and sums are taken in double and stored as float32, the
/// arithmetic of transformers.js' <c>interpolate_data</c>, so panoptic results equal its to the pixel.
/// </summary>
internal static class HuggingFaceResize
{
    /// <summary>The size Mask2Former's post-processing resizes mask logits to first ("384 for all models").</summary>
    public const int Mask2FormerSide = 384;

    /// <summary>Resizes every plane of [planes, inHeight, inWidth] into [planes, outHeight, outWidth].</summary>
    public static void Bilinear(ReadOnlySpan<float> source, int planes, int inHeight, int inWidth, Span<float> target, int outHeight, int outWidth)
    {
        var xScale = (double)outWidth / inWidth;
        var yScale = (double)outHeight / inHeight;
        Span<int> x1s = outWidth <= 4096 ? stackalloc int[outWidth] : new int[outWidth];
        Span<int> x2s = outWidth <= 4096 ? stackalloc int[outWidth] : new int[outWidth];
        Span<double> ss = outWidth <= 4096 ? stackalloc double[outWidth] : new double[outWidth];
        for (var j = 0; j < outWidth; j++)
        {
            var x = ((j + 0.5) / xScale) - 0.5;
            var x1 = (int)Math.Floor(x);
            x2s[j] = Math.Min(x1 + 1, inWidth - 1);
            x1s[j] = Math.Max(x1, 0);
            ss[j] = x - x1s[j];
        }

        var inPlane = inHeight * inWidth;
        var outPlane = outHeight * outWidth;
        for (var i = 0; i < outHeight; i++)
        {
            var y = ((i + 0.5) / yScale) - 0.5;
            var y1 = (int)Math.Floor(y);
            var y2 = Math.Min(y1 + 1, inHeight - 1);
            y1 = Math.Max(y1, 0);
            var t = y - y1;
            for (var p = 0; p < planes; p++)
            {
                var top = source.Slice((p * inPlane) + (y1 * inWidth), inWidth);
                var bottom = source.Slice((p * inPlane) + (y2 * inWidth), inWidth);
                var row = target.Slice((p * outPlane) + (i * outWidth), outWidth);
                for (var j = 0; j < outWidth; j++)
                {
                    var s = ss[j];
                    var (x1, x2) = (x1s[j], x2s[j]);
                    row[j] = (float)(((1 - s) * (1 - t) * top[x1]) + (s * (1 - t) * top[x2]) + ((1 - s) * t * bottom[x1]) + (s * t * bottom[x2]));
                }
            }
        }
    }

    /// <summary>PyTorch's nearest source index: floor(dst · (float)in/out), clamped.</summary>
    public static int NearestSource(int output, int inputSize, int outputSize)
    {
        if (inputSize == outputSize)
        {
            return output;
        }

        var scale = (float)inputSize / outputSize;
        return Math.Min((int)MathF.Floor(output * scale), inputSize - 1);
    }

    /// <summary>
    /// The mask logits as transformers sees them: as the model gave them, or for Mask2Former first
    /// resized to 384 × 384. Returns the planes and their size; the array is rented when resized.
    /// </summary>
    public static (float[]? Rented, int Height, int Width) MaskLogits(ModelOutput output, bool mask2Former)
    {
        if (!mask2Former)
        {
            return (null, output.MaskHeight, output.MaskWidth);
        }

        var rented = EngineArrayPool<float>.Shared.Rent(output.Queries * Mask2FormerSide * Mask2FormerSide);
        Bilinear(output.MaskLogits, output.Queries, output.MaskHeight, output.MaskWidth, rented, Mask2FormerSide, Mask2FormerSide);
        return (rented, Mask2FormerSide, Mask2FormerSide);
    }

    /// <summary>1 / (1 + exp(−x)) in double, stored as float32 (transformers.js' sigmoid).</summary>
    public static float Sigmoid(float x) => (float)(1.0 / (1.0 + Math.Exp(-x)));

    /// <summary>
    /// Softmax over one query's class logits: exponentials stored as float32, summed in double, each
    /// divided and stored as float32 (transformers.js' softmax on a Float32Array).
    /// </summary>
    public static void Softmax(ReadOnlySpan<float> logits, Span<float> probabilities)
    {
        var max = float.NegativeInfinity;
        foreach (var value in logits)
        {
            max = Math.Max(max, value);
        }

        var sum = 0.0;
        for (var i = 0; i < logits.Length; i++)
        {
            probabilities[i] = (float)Math.Exp((double)logits[i] - max);
            sum += probabilities[i];
        }

        for (var i = 0; i < logits.Length; i++)
        {
            probabilities[i] = (float)(probabilities[i] / sum);
        }
    }
}
