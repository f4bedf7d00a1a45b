using MaskFormer.Engine.Models;

namespace MaskFormer.Engine.Preprocessing;

/// <summary>
/// The sizes an image goes through: original → resized → padded (the model's input). Results are
/// cropped back to the resized size and scaled to the original one.
/// </summary>
public readonly record struct ResizePlan(int OriginalHeight, int OriginalWidth, int ResizedHeight, int ResizedWidth, int PaddedHeight, int PaddedWidth)
{
    /// <summary>Plans the sizes for an image of the given size under <paramref name="config"/>.</summary>
    public static ResizePlan For(int height, int width, PreprocessorConfig config)
    {
        var (resizedHeight, resizedWidth) = config.ResizeMode switch
        {
            ResizeMode.Fixed => (config.Height, config.Width),
            ResizeMode.ShortestEdge => ShortestEdgeSize(height, width, config.ShortestEdge, config.LongestEdge),
            _ => (height, width),
        };

        var divisor = Math.Max(1, config.SizeDivisor);
        if (config.SizeDivisorRule == SizeDivisorRule.Resize && config.ResizeMode != ResizeMode.None)
        {
            // HuggingFace's get_maskformer_resize_output_image_size: the target itself is rounded up.
            (resizedHeight, resizedWidth) = (RoundUp(resizedHeight, divisor), RoundUp(resizedWidth, divisor));
        }

        return new ResizePlan(
            height,
            width,
            resizedHeight,
            resizedWidth,
            RoundUp(resizedHeight, divisor),
            RoundUp(resizedWidth, divisor));
    }

    // HuggingFace's get_resize_output_image_size(default_to_square=False): the shorter side becomes
    // `shortest`, the longer keeps the aspect ratio truncated to an integer, and if that exceeds
    // `longest` both are scaled down so the longer side equals it.
    internal static (int Height, int Width) ShortestEdgeSize(int height, int width, int shortest, int longest)
    {
        var (shortSide, longSide) = width <= height ? (width, height) : (height, width);
        var newShort = shortest;
        var newLong = (int)(shortest * (double)longSide / shortSide);
        if (longest > 0 && newLong > longest)
        {
            newShort = (int)(longest * (double)newShort / newLong);
            newLong = longest;
        }

        newShort = Math.Max(1, newShort);
        return width <= height ? (newLong, newShort) : (newShort, newLong);
    }

    private static int RoundUp(int value, int divisor) => (value + divisor - 1) / divisor * divisor;
}
