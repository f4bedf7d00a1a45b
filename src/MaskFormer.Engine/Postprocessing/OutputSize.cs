using MaskFormer.Engine.Preprocessing;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// The size results are produced at. As detectron2's <c>target_size</c>, the mask logits are upsampled
/// straight to it, so a smaller size also means less per-pixel work.
/// </summary>
public sealed record OutputSize
{
    /// <summary>The largest side a result may have, in pixels.</summary>
    public const int MaxSide = 8192;

    private OutputSize(OutputSizeKind kind, int width, int height, double scale)
    {
        Kind = kind;
        Width = width;
        Height = height;
        Scale = scale;
    }

    /// <summary>The image's own size (the default).</summary>
    public static OutputSize Original { get; } = new(OutputSizeKind.Original, 0, 0, 1);

    /// <summary>The size the model sees, before padding.</summary>
    public static OutputSize ModelInput { get; } = new(OutputSizeKind.ModelInput, 0, 0, 1);

    /// <summary>Which kind of size this is.</summary>
    public OutputSizeKind Kind { get; }

    /// <summary>The width of an <see cref="OutputSizeKind.Exact"/> size.</summary>
    public int Width { get; }

    /// <summary>The height of an <see cref="OutputSizeKind.Exact"/> size.</summary>
    public int Height { get; }

    /// <summary>The factor of a <see cref="OutputSizeKind.Scale"/> size.</summary>
    public double Scale { get; }

    /// <summary>A given width and height.</summary>
    public static OutputSize Exact(int width, int height) => new(OutputSizeKind.Exact, width, height, 1);

    /// <summary>
    /// The original size times <paramref name="scale"/>, each side rounded half to even (as Python's round);
    /// a side that rounds to 0 is invalid, as the caller asked for it.
    /// </summary>
    public static OutputSize Scaled(double scale) => new(OutputSizeKind.Scale, 0, 0, scale);

    /// <summary>
    /// As <see cref="Scaled"/>, but each side at least one pixel: a scale the server chose (a latency
    /// contract's downscaling) must not fail a thin frame.
    /// </summary>
    public static OutputSize Downscaled(double scale) => new(OutputSizeKind.Scale, 0, 0, scale) { AtLeastOnePixel = true };

    /// <summary>Whether a scaled side that rounds to 0 becomes 1 instead of invalid.</summary>
    public bool AtLeastOnePixel { get; private init; }

    private int ScaledSide(int original)
    {
        var side = (int)Math.Min(Math.Round(original * Scale), int.MaxValue);
        return AtLeastOnePixel ? Math.Max(1, side) : side;
    }

    /// <summary>
    /// The plan post-processing runs on: the same resized and padded sizes, with this size in place of
    /// the original one.
    /// </summary>
    /// <exception cref="SegmentationException">The size is empty or larger than <see cref="MaxSide"/>.</exception>
    public ResizePlan Apply(ResizePlan plan)
    {
        var (width, height, field) = Kind switch
        {
            OutputSizeKind.ModelInput => (plan.ResizedWidth, plan.ResizedHeight, "options.output_size.model_input"),
            OutputSizeKind.Exact => (Width, Height, "options.output_size.exact"),
            OutputSizeKind.Scale => (ScaledSide(plan.OriginalWidth), ScaledSide(plan.OriginalHeight), "options.output_size.scale"),
            _ => (plan.OriginalWidth, plan.OriginalHeight, "options.output_size"),
        };
        if (width < 1 || height < 1 || width > MaxSide || height > MaxSide)
        {
            throw SegmentationException.Invalid(field, $"The output size {width}x{height} is not valid: each side must be between 1 and {MaxSide}.");
        }

        return plan with { OriginalWidth = width, OriginalHeight = height };
    }
}

/// <summary>The kinds of <see cref="OutputSize"/>.</summary>
public enum OutputSizeKind
{
    /// <summary>The image's own size.</summary>
    Original,

    /// <summary>The model's input size, before padding.</summary>
    ModelInput,

    /// <summary>A given width and height.</summary>
    Exact,

    /// <summary>The original size times a factor.</summary>
    Scale,
}
