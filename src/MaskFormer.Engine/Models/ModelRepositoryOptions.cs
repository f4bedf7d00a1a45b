namespace MaskFormer.Engine.Models;

/// <summary>Where models are found. Bound from the "MaskFormer:Models" section.</summary>
public sealed class ModelRepositoryOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "MaskFormer:Models";

    /// <summary>
    /// A folder of model folders (each with model.onnx, config.json, preprocessor_config.json, or with
    /// one such folder per version), or a single model folder. Relative paths are resolved against the
    /// working directory. Default "models".
    /// </summary>
    public string Path { get; set; } = "models";

    /// <summary>The model used when a request names none; empty means the first by name.</summary>
    public string DefaultModel { get; set; } = string.Empty;
}
