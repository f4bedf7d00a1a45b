using System.Text.Json;

namespace MaskFormer.Engine.Models;

/// <summary>How images are resized before the model sees them.</summary>
public enum ResizeMode
{
    /// <summary>Images are used at their own size (only padded).</summary>
    None,

    /// <summary>Resized to a fixed height and width, ignoring the aspect ratio.</summary>
    Fixed,

    /// <summary>The shorter side is resized to a target, capped by a maximum for the longer side.</summary>
    ShortestEdge,
}

/// <summary>How 8-bit images are resampled when resized.</summary>
public enum ResizeMethod
{
    /// <summary>
    /// PyTorch's <c>F.interpolate(mode="bilinear", align_corners=False)</c> on float pixels: no
    /// antialiasing. What models trained on tensors resized in PyTorch expect.
    /// </summary>
    Interpolate,

    /// <summary>
    /// Pillow's <c>Image.resize(BILINEAR)</c> on the 8-bit image, antialiased when shrinking: what
    /// HuggingFace image processors and detectron2's <c>ResizeTransform</c> feed their models.
    /// </summary>
    Pil,
}

/// <summary>How an image is brought to a multiple of the size divisor.</summary>
public enum SizeDivisorRule
{
    /// <summary>Zero-pad bottom and right after resizing (detectron2).</summary>
    Pad,

    /// <summary>Round the resize target up to the divisor (HuggingFace MaskFormer/Mask2Former processors).</summary>
    Resize,
}

/// <summary>
/// A HuggingFace-style <c>preprocessor_config.json</c>: resize, rescale, normalise, pad. Reads the
/// variants real exports use: <c>size</c> as {height, width}, as {shortest_edge, longest_edge}, as a
/// bare integer with a separate <c>max_size</c>, and the legacy <c>size_divisibility</c>.
/// </summary>
public sealed record PreprocessorConfig
{
    /// <summary>How images are resized.</summary>
    public required ResizeMode ResizeMode { get; init; }

    /// <summary>Target height for <see cref="ResizeMode.Fixed"/>.</summary>
    public int Height { get; init; }

    /// <summary>Target width for <see cref="ResizeMode.Fixed"/>.</summary>
    public int Width { get; init; }

    /// <summary>Target for the shorter side for <see cref="ResizeMode.ShortestEdge"/>.</summary>
    public int ShortestEdge { get; init; }

    /// <summary>Cap for the longer side for <see cref="ResizeMode.ShortestEdge"/>; 0 for none.</summary>
    public int LongestEdge { get; init; }

    /// <summary>
    /// How images are resampled: the file's <c>resize_method</c> ("pil" or "interpolate") when it
    /// names one, else <see cref="ResizeMethod.Pil"/> for a HuggingFace image processor config (it
    /// names an <c>image_processor_type</c> or <c>feature_extractor_type</c>), else
    /// <see cref="ResizeMethod.Interpolate"/>.
    /// </summary>
    public ResizeMethod ResizeMethod { get; init; }

    /// <summary>
    /// How the size divisor is met: <see cref="SizeDivisorRule.Pad"/> (resize, then zero-pad bottom and
    /// right: detectron2) or <see cref="SizeDivisorRule.Resize"/> (the resize target itself rounded up to
    /// the divisor, no padding: HuggingFace's MaskFormer and Mask2Former image processors). The file's
    /// <c>size_divisor_rule</c> when it names one, else Resize for a HuggingFace processor config.
    /// </summary>
    public SizeDivisorRule SizeDivisorRule { get; init; }

    /// <summary>Thing label ids from the processor's detectron2 <c>metadata.thing_ids</c> (OneFormer), if any.</summary>
    public IReadOnlySet<int>? MetadataThingIds { get; init; }

    /// <summary>Where <see cref="ResizeMethod"/> came from, for ListModels and logs.</summary>
    public string ResizeMethodSource { get; init; } = "default";

    /// <summary>Pad bottom and right to a multiple of this; 1 for none.</summary>
    public int SizeDivisor { get; init; } = 1;

    /// <summary>Multiplier applied to 8-bit channel values (usually 1/255).</summary>
    public float RescaleFactor { get; init; } = 1f / 255f;

    /// <summary>Per-channel mean, RGB, subtracted after rescaling.</summary>
    public required float[] ImageMean { get; init; }

    /// <summary>Per-channel standard deviation, RGB, divided after subtracting the mean.</summary>
    public required float[] ImageStd { get; init; }

    /// <summary>Parses <paramref name="path"/>; throws <see cref="ModelLoadException"/> naming it.</summary>
    public static PreprocessorConfig Load(string path)
    {
        using var document = ModelJson.Parse(path);
        var root = document.RootElement;

        var doResize = ReadBool(root, "do_resize", true);
        var doRescale = ReadBool(root, "do_rescale", true);
        var doNormalize = ReadBool(root, "do_normalize", true);
        var doPad = ReadBool(root, "do_pad", true);

        if (root.TryGetProperty("resample", out var resample) && resample.ValueKind == JsonValueKind.Number && resample.GetInt32() != 2)
        {
            throw new ModelLoadException(path, $"'resample' {resample.GetInt32()} is not supported; only 2 (bilinear) is.");
        }

        var divisor = ReadInt(root, "size_divisor", path) ?? ReadInt(root, "size_divisibility", path) ?? 32;
        var maxSize = ReadInt(root, "max_size", path);
        var config = doResize ? ReadSize(root, path, maxSize) : new PreprocessorConfig { ResizeMode = ResizeMode.None, ImageMean = [], ImageStd = [] };

        var mean = doNormalize ? ReadTriple(root, "image_mean", path) ?? [0.485f, 0.456f, 0.406f] : [0f, 0f, 0f];
        var std = doNormalize ? ReadTriple(root, "image_std", path) ?? [0.229f, 0.224f, 0.225f] : [1f, 1f, 1f];
        if (std.Any(s => s <= 0))
        {
            throw new ModelLoadException(path, "'image_std' values must be positive.");
        }

        var rescale = doRescale ? (float)(ReadDouble(root, "rescale_factor") ?? 1.0 / 255.0) : 1f;

        var (method, methodSource) = ReadResizeMethod(root, path);
        var divisorRule = ReadDivisorRule(root, path);
        return config with
        {
            ResizeMethod = method,
            SizeDivisorRule = divisorRule,
            MetadataThingIds = root.TryGetProperty("metadata", out var metadata) && metadata.ValueKind == JsonValueKind.Object
                && metadata.TryGetProperty("thing_ids", out var thingIds) && thingIds.ValueKind == JsonValueKind.Array
                ? thingIds.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out _)).Select(e => e.GetInt32()).ToHashSet()
                : null,
            ResizeMethodSource = methodSource,
            SizeDivisor = doPad && divisor > 1 ? divisor : 1,
            RescaleFactor = rescale,
            ImageMean = mean,
            ImageStd = std,
        };
    }

    private static (ResizeMethod Method, string Source) ReadResizeMethod(JsonElement root, string path)
    {
        if (root.TryGetProperty("resize_method", out var method))
        {
            return method.ValueKind == JsonValueKind.String && TryParseResizeMethod(method.GetString(), out var parsed)
                ? (parsed, "preprocessor_config.json resize_method")
                : throw new ModelLoadException(path, "'resize_method' must be \"pil\" or \"interpolate\".");
        }

        foreach (var key in (string[])["image_processor_type", "feature_extractor_type"])
        {
            if (root.TryGetProperty(key, out var type) && type.ValueKind == JsonValueKind.String)
            {
                return (ResizeMethod.Pil, $"preprocessor_config.json {key} {type.GetString()}");
            }
        }

        return (ResizeMethod.Interpolate, "default");
    }

    private static SizeDivisorRule ReadDivisorRule(JsonElement root, string path)
    {
        if (root.TryGetProperty("size_divisor_rule", out var rule))
        {
            return rule.ValueKind == JsonValueKind.String && rule.GetString() is "pad" or "resize"
                ? rule.GetString() == "pad" ? SizeDivisorRule.Pad : SizeDivisorRule.Resize
                : throw new ModelLoadException(path, "'size_divisor_rule' must be \"pad\" or \"resize\".");
        }

        return root.TryGetProperty("image_processor_type", out var type) && IsMaskFormerProcessor(type.GetString())
            || root.TryGetProperty("feature_extractor_type", out var extractor) && extractor.GetString() is "MaskFormerFeatureExtractor"
            ? SizeDivisorRule.Resize
            : SizeDivisorRule.Pad;
    }

    // transformers' MaskFormer and Mask2Former processors, in each of their back-ends (the PIL one, "Fast"
    // on torchvision, and "Pil" where transformers 5 renamed the PIL one): all round the resized size up
    // to the divisor. Any other name keeps detectron2's padding.
    private static bool IsMaskFormerProcessor(string? type)
    {
        foreach (var family in (string[])["MaskFormerImageProcessor", "Mask2FormerImageProcessor"])
        {
            if (type is not null && type.StartsWith(family, StringComparison.Ordinal) && type[family.Length..] is "" or "Fast" or "Pil")
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Parses "pil" or "interpolate" (any case).</summary>
    public static bool TryParseResizeMethod(string? text, out ResizeMethod method)
    {
        method = string.Equals(text, "pil", StringComparison.OrdinalIgnoreCase) ? ResizeMethod.Pil : ResizeMethod.Interpolate;
        return string.Equals(text, "pil", StringComparison.OrdinalIgnoreCase) || string.Equals(text, "interpolate", StringComparison.OrdinalIgnoreCase);
    }

    private static PreprocessorConfig ReadSize(JsonElement root, string path, int? maxSize)
    {
        if (!root.TryGetProperty("size", out var size))
        {
            throw new ModelLoadException(path, "has no 'size' although 'do_resize' is true.");
        }

        if (size.ValueKind == JsonValueKind.Number)
        {
            return ShortestEdgeConfig(size.GetInt32(), maxSize ?? 0, path);
        }

        if (size.ValueKind != JsonValueKind.Object)
        {
            throw new ModelLoadException(path, "'size' must be a number or an object.");
        }

        var height = ReadInt(size, "height", path);
        var width = ReadInt(size, "width", path);
        if (height is > 0 && width is > 0)
        {
            return new PreprocessorConfig { ResizeMode = ResizeMode.Fixed, Height = height.Value, Width = width.Value, ImageMean = [], ImageStd = [] };
        }

        var shortest = ReadInt(size, "shortest_edge", path)
            ?? throw new ModelLoadException(path, "'size' must give {height, width} or {shortest_edge[, longest_edge]}.");
        return ShortestEdgeConfig(shortest, ReadInt(size, "longest_edge", path) ?? maxSize ?? 0, path);
    }

    private static PreprocessorConfig ShortestEdgeConfig(int shortest, int longest, string path)
    {
        if (shortest <= 0 || longest < 0 || (longest > 0 && longest < shortest))
        {
            throw new ModelLoadException(path, $"resize target shortest_edge={shortest}, longest_edge={longest} is not valid.");
        }

        return new PreprocessorConfig { ResizeMode = ResizeMode.ShortestEdge, ShortestEdge = shortest, LongestEdge = longest, ImageMean = [], ImageStd = [] };
    }

    private static bool ReadBool(JsonElement root, string name, bool fallback) =>
        root.TryGetProperty(name, out var value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? value.GetBoolean()
            : fallback;

    private static int? ReadInt(JsonElement element, string name, string path)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var result) && result >= 0
            ? result
            : throw new ModelLoadException(path, $"'{name}' must be a non-negative integer.");
    }

    private static double? ReadDouble(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : null;

    private static float[]? ReadTriple(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var value))
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.Number)
        {
            var single = (float)value.GetDouble();
            return [single, single, single];
        }

        var values = value.ValueKind == JsonValueKind.Array
            ? value.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number ? (float)e.GetDouble() : float.NaN).ToArray()
            : [];
        return values.Length == 3 && values.All(float.IsFinite)
            ? values
            : throw new ModelLoadException(path, $"'{name}' must be three numbers (RGB).");
    }
}
