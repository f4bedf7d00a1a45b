using System.Runtime.Intrinsics;
using MaskFormer.Engine.Preprocessing;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// One axis of the reference's two-step mask upsampling folded into a single sparse map: mask logits
/// (stride 4) → bilinear to the padded input size → crop to the resized size → bilinear to the
/// original size. Bilinear resizes are separable and linear, so each output coordinate is a weighted
/// sum of at most four mask coordinates; computing it that way gives the reference's values without
/// ever building the padded-size tensor.
/// </summary>
internal sealed class ComposedAxis
{
    public const int Taps = 4;

    public ComposedAxis(int maskSize, int paddedSize, int resizedSize, int originalSize)
    {
        OutputSize = originalSize;
        MaskSize = maskSize;
        ResizedSize = resizedSize;
        Indices = new int[originalSize * Taps];
        Weights = new float[originalSize * Taps];
        TapIndices = new int[originalSize * Taps];
        TapWeights = new float[originalSize * Taps];
        ResizedLower = new int[originalSize];
        ResizedWeights = new float[originalSize];
        GridLower = new int[resizedSize];
        GridWeights = new float[resizedSize];
        WindowStarts = new int[originalSize];
        WideWindowStarts = new int[originalSize];
        GridWindowStarts = new int[resizedSize];
        using var first = new BilinearAxis(maskSize, paddedSize);
        using var second = new BilinearAxis(resizedSize, originalSize);
        first.Lower[..resizedSize].CopyTo(GridLower);
        first.Weights[..resizedSize].CopyTo(GridWeights);
        for (var i = 0; i < originalSize; i++)
        {
            var lower = second.Lower[i];
            ResizedLower[i] = lower;
            var upperWeight = second.Weights[i];
            ResizedWeights[i] = upperWeight;
            Fill(i, 0, first, lower, 1f - upperWeight, maskSize);
            Fill(i, 2, first, Math.Min(lower + 1, resizedSize - 1), upperWeight, maskSize);
            for (var k = 0; k < Taps; k++)
            {
                TapIndices[(k * originalSize) + i] = Indices[(i * Taps) + k];
                TapWeights[(k * originalSize) + i] = Weights[(i * Taps) + k];
            }
        }

        FillWindows(WindowStarts, WindowLength, maskSize);
        FillWindows(WideWindowStarts, WideWindowLength, maskSize);
        FillGridWindows(maskSize);
        TwoTaps = true;
        for (var i = 0; i < originalSize && TwoTaps; i++)
        {
            TwoTaps = Weights[(i * Taps) + 2] == 0f && Weights[(i * Taps) + 3] == 0f;
        }

        Segments = SegmentMoments.For(this);
        NonZeroCounts = new int[originalSize];
        NonZeroIndices = new int[originalSize * Taps];
        NonZeroWeights = new float[originalSize * Taps];
        for (var i = 0; i < originalSize; i++)
        {
            var count = 0;
            for (var k = i * Taps; k < (i + 1) * Taps; k++)
            {
                if (Weights[k] != 0f)
                {
                    (NonZeroIndices[(i * Taps) + count], NonZeroWeights[(i * Taps) + count]) = (Indices[k], Weights[k]);
                    count++;
                }
            }

            NonZeroCounts[i] = count;
        }
    }

    /// <summary>For output i, how many of its taps weigh something: the first entries at [i * 4, i * 4 + 4) of <see cref="NonZeroIndices"/> and <see cref="NonZeroWeights"/>.</summary>
    public int[] NonZeroCounts { get; }

    /// <summary>For output i, the mask indices of the taps that weigh something, in tap order.</summary>
    public int[] NonZeroIndices { get; }

    /// <summary>For output i, the weights of those taps.</summary>
    public float[] NonZeroWeights { get; }

    /// <summary>The outputs grouped by the resized-grid point below them, for sums over rows; null where the axis upsamples too little.</summary>
    public SegmentMoments? Segments { get; }

    /// <summary>Whether every output's last two taps weigh nothing: the second resize keeps the grid (original size = resized size).</summary>
    public bool TwoTaps { get; }

    public int OutputSize { get; }

    public int MaskSize { get; }

    /// <summary>Size of the resized (cropped) grid between the two resizes.</summary>
    public int ResizedSize { get; }

    /// <summary>
    /// For output i, the resized-grid coordinate below it: the output is a blend of grid points
    /// ResizedLower[i] and the next, with a weight that grows with i while ResizedLower[i] stays put.
    /// </summary>
    public int[] ResizedLower { get; }

    /// <summary>For output i, the weight of resized-grid point ResizedLower[i] + 1 (the second resize).</summary>
    public float[] ResizedWeights { get; }

    /// <summary>For resized-grid point r, the mask index below it (the first resize).</summary>
    public int[] GridLower { get; }

    /// <summary>For resized-grid point r, the weight of mask index GridLower[r] + 1.</summary>
    public float[] GridWeights { get; }

    /// <summary>For output i, mask indices at [i * 4, i * 4 + 4).</summary>
    public int[] Indices { get; }

    /// <summary>For output i, the weights of those indices (summing to 1).</summary>
    public float[] Weights { get; }

    /// <summary><see cref="Indices"/> tap by tap: tap k of output i at [k * OutputSize + i], for vector loads.</summary>
    public int[] TapIndices { get; }

    /// <summary><see cref="Weights"/> tap by tap, as <see cref="TapIndices"/>.</summary>
    public float[] TapWeights { get; }

    /// <summary>
    /// For output i, the first of <see cref="WindowLength"/> mask indices that hold every tap of outputs
    /// [i, i + WindowLength), or -1 where they spread wider (downsampling, or the axis's end): a vector of
    /// outputs then reads all its taps from one load of the blended mask row.
    /// </summary>
    public int[] WindowStarts { get; }

    /// <summary>Outputs (and mask values) per window: one 256-bit vector of floats.</summary>
    public static int WindowLength => Vector256<float>.Count;

    /// <summary>As <see cref="WindowStarts"/> for <see cref="WideWindowLength"/> outputs: one 512-bit vector's.</summary>
    public int[] WideWindowStarts { get; }

    /// <summary>Outputs (and mask values) per wide window: one 512-bit vector of floats.</summary>
    public static int WideWindowLength => Vector512<float>.Count;

    private void FillWindows(int[] windowStarts, int length, int maskSize)
    {
        for (var i = 0; i < OutputSize; i++)
        {
            windowStarts[i] = -1;
            if (maskSize < length || i + length > OutputSize)
            {
                continue;
            }

            var start = Math.Min(Indices[i * Taps], maskSize - length);
            var inside = true;
            for (var at = i * Taps; at < (i + length) * Taps && inside; at++)
            {
                inside = Indices[at] >= start && Indices[at] < start + length;
            }

            windowStarts[i] = inside ? start : -1;
        }
    }

    /// <summary>
    /// For resized-grid point r, the first of <see cref="WindowLength"/> mask indices that hold both
    /// mask indices of grid points [r, r + WindowLength) (GridLower and GridLower + 1, unclamped), or -1.
    /// </summary>
    public int[] GridWindowStarts { get; }

    private void FillGridWindows(int maskSize)
    {
        var length = WindowLength;
        for (var r = 0; r < ResizedSize; r++)
        {
            GridWindowStarts[r] = -1;
            if (maskSize < length || r + length > ResizedSize)
            {
                continue;
            }

            var start = Math.Min(GridLower[r], maskSize - length);
            var inside = true;
            for (var k = r; k < r + length && inside; k++)
            {
                inside = GridLower[k] >= start && GridLower[k] + 1 < start + length && GridLower[k] + 1 <= maskSize - 1;
            }

            GridWindowStarts[r] = inside ? start : -1;
        }
    }

    private void Fill(int output, int slot, BilinearAxis first, int paddedIndex, float weight, int maskSize)
    {
        var lower = first.Lower[paddedIndex];
        var upperWeight = first.Weights[paddedIndex];
        var at = (output * Taps) + slot;
        Indices[at] = lower;
        Weights[at] = weight * (1f - upperWeight);
        Indices[at + 1] = Math.Min(lower + 1, maskSize - 1);
        Weights[at + 1] = weight * upperWeight;
    }
}
