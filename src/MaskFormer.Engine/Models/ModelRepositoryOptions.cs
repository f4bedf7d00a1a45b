namespace MaskFormer.Engine.Models;

/// <summary>Where models are found. Bound from the "MaskFormer:Models" section.</summary>
public sealed class ModelRepositoryOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "MaskFormer:Models";

    /// <summary>
    /// A folder of model folders (each with model.onnx, config.json, preprocessor_config.json, or with
    /// one such folder per version), or a single model folder. A relative path is resolved against the
    /// working directory. Empty (the default) means the shipped "models" folder, found as
    /// <see cref="ModelRepositoryLocator"/> says.
    /// </summary>
    public string Path { get; set; } = string.Empty;

    /// <summary>The model used when a request names none; empty means the first by name.</summary>
    public string DefaultModel { get; set; } = string.Empty;

    /// <summary>
    /// Which ONNX file variant to serve, as transformers.js / onnx-community name them: empty for
    /// <c>model.onnx</c>, else <c>model_{Variant}.onnx</c> ("fp16", "quantized", "int8", ...), looked
    /// for in the model folder and in its <c>onnx/</c> sub-folder. Per model in <see cref="Overrides"/>.
    /// </summary>
    public string Variant { get; set; } = string.Empty;

    /// <summary>Per-model settings by model name, overriding what the model folder says.</summary>
    public Dictionary<string, ModelOverrides> Overrides { get; set; } = [];
}

/// <summary>Settings for one model, from "MaskFormer:Models:Overrides:{name}".</summary>
public sealed class ModelOverrides
{
    /// <summary>The ONNX variant to serve (see <see cref="ModelRepositoryOptions.Variant"/>); null keeps the default.</summary>
    public string? Variant { get; set; }

    /// <summary>The thing label ids; every other label is stuff. Null keeps what the folder says.</summary>
    public int[]? ThingIds { get; set; }

    /// <summary>"pil" or "interpolate"; null keeps what preprocessor_config.json implies.</summary>
    public string? ResizeMethod { get; set; }
}
