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
    public static void Bilinear(ReadOnlySpan<float> source, int planes, int inHeight, int inWidth, Span<float> target, int outHeight, int outWidth) =>
        new BilinearRows(inHeight, inWidth, outHeight, outWidth).Resize(source, planes, target, 0, outHeight);

    /// <summary>
    /// A band of output rows of every plane resized, into [planes, rows, outWidth]: each pixel as
    /// <see cref="Bilinear"/> computes it, so a large output can be produced a band of rows at a time.
    /// </summary>
    internal readonly struct BilinearRows
    {
        private readonly int _inHeight;
        private readonly int _inWidth;
        private readonly int _outHeight;
        private readonly int _outWidth;
        private readonly int[] _x1s;
        private readonly int[] _x2s;
        private readonly double[] _ss;

        public BilinearRows(int inHeight, int inWidth, int outHeight, int outWidth)
        {
            (_inHeight, _inWidth, _outHeight, _outWidth) = (inHeight, inWidth, outHeight, outWidth);
            (_x1s, _x2s, _ss) = (new int[outWidth], new int[outWidth], new double[outWidth]);
            var xScale = (double)outWidth / inWidth;
            for (var j = 0; j < outWidth; j++)
            {
                var x = ((j + 0.5) / xScale) - 0.5;
                var x1 = (int)Math.Floor(x);
                _x2s[j] = Math.Min(x1 + 1, inWidth - 1);
                _x1s[j] = Math.Max(x1, 0);
                _ss[j] = x - _x1s[j];
            }
        }

        public void Resize(ReadOnlySpan<float> source, int planes, Span<float> target, int firstRow, int rows)
        {
            var yScale = (double)_outHeight / _inHeight;
            var inPlane = _inHeight * _inWidth;
            var bandPlane = rows * _outWidth;
            for (var i = firstRow; i < firstRow + rows; i++)
            {
                var y = ((i + 0.5) / yScale) - 0.5;
                var y1 = (int)Math.Floor(y);
                var y2 = Math.Min(y1 + 1, _inHeight - 1);
                y1 = Math.Max(y1, 0);
                var t = y - y1;
                for (var p = 0; p < planes; p++)
                {
                    var top = source.Slice((p * inPlane) + (y1 * _inWidth), _inWidth);
                    var bottom = source.Slice((p * inPlane) + (y2 * _inWidth), _inWidth);
                    var row = target.Slice((p * bandPlane) + ((i - firstRow) * _outWidth), _outWidth);
                    for (var j = 0; j < row.Length; j++)
                    {
                        var s = _ss[j];
                        var (x1, x2) = (_x1s[j], _x2s[j]);
                        row[j] = (float)(((1 - s) * (1 - t) * top[x1]) + (s * (1 - t) * top[x2]) + ((1 - s) * t * bottom[x1]) + (s * t * bottom[x2]));
                    }
                }
            }
        }

        /// <summary>
        /// Rows per band so that <paramref name="planes"/> planes of a band hold about a million values (4 MB),
        /// at least one row: memory that does not grow with the output size or the classes.
        /// </summary>
        public int BandRows(int planes) => (int)Math.Clamp((1L << 20) / Math.Max(1L, (long)planes * _outWidth), 1, _outHeight);
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
