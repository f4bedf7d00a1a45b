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
        Indices = new int[originalSize * Taps];
        Weights = new float[originalSize * Taps];
        using var first = new BilinearAxis(maskSize, paddedSize);
        using var second = new BilinearAxis(resizedSize, originalSize);
        for (var i = 0; i < originalSize; i++)
        {
            var lower = second.Lower[i];
            var upperWeight = second.Weights[i];
            Fill(i, 0, first, lower, 1f - upperWeight, maskSize);
            Fill(i, 2, first, Math.Min(lower + 1, resizedSize - 1), upperWeight, maskSize);
        }
    }

    public int OutputSize { get; }

    /// <summary>For output i, mask indices at [i * 4, i * 4 + 4).</summary>
    public int[] Indices { get; }

    /// <summary>For output i, the weights of those indices (summing to 1).</summary>
    public float[] Weights { get; }

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
