namespace MaskFormer.Engine.Models;

/// <summary>A model folder on disk, read and checked: its configs parse and its model file exists.</summary>
public sealed record ModelFolder
{
    /// <summary>The model file every folder must have.</summary>
    public const string ModelFileName = "model.onnx";

    /// <summary>The HuggingFace model config.</summary>
    public const string ConfigFileName = "config.json";

    /// <summary>The HuggingFace image-processor config.</summary>
    public const string PreprocessorFileName = "preprocessor_config.json";

    /// <summary>The name requests use.</summary>
    public required string Name { get; init; }

    /// <summary>The version.</summary>
    public required string Version { get; init; }

    /// <summary>The folder.</summary>
    public required string Directory { get; init; }

    /// <summary>Full path of model.onnx.</summary>
    public string ModelPath => System.IO.Path.Combine(Directory, ModelFileName);

    /// <summary>The parsed config.json.</summary>
    public required ModelConfig Config { get; init; }

    /// <summary>The parsed preprocessor_config.json.</summary>
    public required PreprocessorConfig Preprocessor { get; init; }

    /// <summary>
    /// True when <paramref name="directory"/> holds a model file or a model config, so a folder whose
    /// model.onnx is missing is reported as such rather than skipped.
    /// </summary>
    public static bool IsModelFolder(string directory) =>
        File.Exists(System.IO.Path.Combine(directory, ModelFileName)) || File.Exists(System.IO.Path.Combine(directory, ConfigFileName));

    /// <summary>Reads a model folder; throws <see cref="ModelLoadException"/> naming the file at fault.</summary>
    public static ModelFolder Read(string directory, string name, string? version)
    {
        var modelPath = System.IO.Path.Combine(directory, ModelFileName);
        if (!File.Exists(modelPath))
        {
            throw new ModelLoadException(modelPath, "does not exist.");
        }

        if (new FileInfo(modelPath).Length == 0)
        {
            throw new ModelLoadException(modelPath, "is empty.");
        }

        var config = ModelConfig.Load(System.IO.Path.Combine(directory, ConfigFileName));
        var preprocessor = PreprocessorConfig.Load(System.IO.Path.Combine(directory, PreprocessorFileName));
        return new ModelFolder
        {
            Name = name,
            Version = version ?? config.Version ?? "1",
            Directory = directory,
            Config = config,
            Preprocessor = preprocessor,
        };
    }

    /// <summary>
    /// Finds every model under <paramref name="root"/>: the root itself when it is a model folder, else
    /// each sub-folder that is one, else each version folder inside a sub-folder.
    /// </summary>
    public static IReadOnlyList<ModelFolder> Discover(string root)
    {
        var full = System.IO.Path.GetFullPath(root);
        if (!System.IO.Directory.Exists(full))
        {
            throw ModelLoadException.RepositoryNotFound(full, $"No model repository at '{full}'.");
        }

        if (IsModelFolder(full))
        {
            return [Read(full, System.IO.Path.GetFileName(full), null)];
        }

        var models = new List<ModelFolder>();
        foreach (var folder in System.IO.Directory.EnumerateDirectories(full).Order(StringComparer.Ordinal))
        {
            var name = System.IO.Path.GetFileName(folder);
            if (IsModelFolder(folder))
            {
                models.Add(Read(folder, name, null));
                continue;
            }

            models.AddRange(System.IO.Directory.EnumerateDirectories(folder)
                .Where(IsModelFolder)
                .Order(StringComparer.Ordinal)
                .Select(versionFolder => Read(versionFolder, name, System.IO.Path.GetFileName(versionFolder))));
        }

        return models.Count > 0
            ? models
            : throw new ModelLoadException(System.IO.Path.Combine(full, "*", ModelFileName), "no model folder found in the model repository.");
    }
}
