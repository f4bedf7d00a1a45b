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
}
