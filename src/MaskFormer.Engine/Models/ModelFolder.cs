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

    /// <summary>Full path of the ONNX file served (model.onnx, onnx/model.onnx or a variant of either).</summary>
    public required string ModelPath { get; init; }

    /// <summary>The ONNX file served, relative to <see cref="Directory"/>.</summary>
    public string ModelFile => System.IO.Path.GetRelativePath(Directory, ModelPath);

    /// <summary>The parsed config.json.</summary>
    public required ModelConfig Config { get; init; }

    /// <summary>The parsed preprocessor_config.json.</summary>
    public required PreprocessorConfig Preprocessor { get; init; }

    /// <summary>
    /// True when <paramref name="directory"/> holds a model file or a model config, so a folder whose
    /// model.onnx is missing is reported as such rather than skipped.
    /// </summary>
    public static bool IsModelFolder(string directory) =>
        File.Exists(System.IO.Path.Combine(directory, ModelFileName))
        || File.Exists(System.IO.Path.Combine(directory, ConfigFileName))
        || File.Exists(System.IO.Path.Combine(directory, OnnxSubfolder, ModelFileName));

    /// <summary>The sub-folder transformers.js and onnx-community exports keep their ONNX files in.</summary>
    public const string OnnxSubfolder = "onnx";

    /// <summary>Reads a model folder; throws <see cref="ModelLoadException"/> naming the file at fault.</summary>
    public static ModelFolder Read(string directory, string name, string? version, ModelRepositoryOptions? options = null)
    {
        var overrides = options?.Overrides.GetValueOrDefault(name);
        var modelPath = FindModelFile(directory, overrides?.Variant ?? options?.Variant ?? string.Empty);
        if (new FileInfo(modelPath).Length == 0)
        {
            throw new ModelLoadException(modelPath, "is empty.");
        }

        var configPath = System.IO.Path.Combine(directory, ConfigFileName);
        var config = ModelJson.Read(configPath, () => ModelConfig.Load(configPath));
        if (overrides?.ThingIds is { } thingIds)
        {
            var bad = thingIds.Where(id => id < 0 || id >= config.Labels.Count).ToArray();
            if (bad.Length > 0)
            {
                throw new ModelLoadException(System.IO.Path.Combine(directory, ConfigFileName), $"setting MaskFormer:Models:Overrides:{name}:ThingIds names label ids [{string.Join(", ", bad)}], which are not labels 0..{config.Labels.Count - 1}.", $"MaskFormer:Models:Overrides:{name}:ThingIds");
            }

            config = config.WithThings(thingIds.ToHashSet(), "server configuration (MaskFormer:Models:Overrides)");
        }
        else if (ModelJson.Read(System.IO.Path.Combine(directory, PanopticCategories.FileName), () => PanopticCategories.TryLoad(directory, config.Labels)) is { } sidecarThings)
        {
            config = config.WithThings(sidecarThings, PanopticCategories.FileName);
        }

        var preprocessorPath = System.IO.Path.Combine(directory, PreprocessorFileName);
        var preprocessor = ModelJson.Read(preprocessorPath, () => PreprocessorConfig.Load(preprocessorPath));
        if (!config.DeclaresThings && preprocessor.MetadataThingIds is { } processorThings)
        {
            // OneFormer's processor configs carry detectron2 metadata (thing_ids) that its model config lacks.
            config = config.WithThings(processorThings.Where(id => id >= 0 && id < config.Labels.Count).ToHashSet(), "preprocessor_config.json metadata.thing_ids");
        }
        if (overrides?.ResizeMethod is { } resizeMethod)
        {
            preprocessor = PreprocessorConfig.TryParseResizeMethod(resizeMethod, out var method)
                ? preprocessor with { ResizeMethod = method, ResizeMethodSource = "server configuration (MaskFormer:Models:Overrides)" }
                : throw new ModelLoadException(System.IO.Path.Combine(directory, PreprocessorFileName), $"setting MaskFormer:Models:Overrides:{name}:ResizeMethod must be \"pil\" or \"interpolate\" (was \"{resizeMethod}\").", $"MaskFormer:Models:Overrides:{name}:ResizeMethod");
        }

        return new ModelFolder
        {
            Name = name,
            Version = version ?? config.Version ?? "1",
            Directory = directory,
            ModelPath = modelPath,
            Config = config,
            Preprocessor = preprocessor,
        };
    }

    // model.onnx or model_{variant}.onnx, beside config.json or in onnx/ (the transformers.js layout).
    private static string FindModelFile(string directory, string variant)
    {
        var fileName = string.IsNullOrEmpty(variant) ? ModelFileName : $"model_{variant}.onnx";
        string[] candidates = [System.IO.Path.Combine(directory, fileName), System.IO.Path.Combine(directory, OnnxSubfolder, fileName)];
        var found = candidates.FirstOrDefault(File.Exists);
        if (found is not null)
        {
            return found;
        }

        var available = new[] { directory, System.IO.Path.Combine(directory, OnnxSubfolder) }
            .Where(System.IO.Directory.Exists)
            .SelectMany(d => System.IO.Directory.EnumerateFiles(d, "*.onnx"))
            .Select(f => System.IO.Path.GetRelativePath(directory, f))
            .Order(StringComparer.Ordinal)
            .ToArray();
        var hint = available.Length > 0
            ? $" Found: {string.Join(", ", available)}; choose one with MaskFormer:Models:Variant (\"fp16\" for model_fp16.onnx, empty for model.onnx)."
            : string.Empty;
        var problem = $"does not exist (nor {System.IO.Path.Combine(OnnxSubfolder, fileName)}).{hint}";
        throw available.Length > 0
            ? new ModelLoadException(candidates[0], problem, ModelRepositoryOptions.SectionName + ":Variant")
            : new ModelLoadException(candidates[0], problem);
    }

    /// <summary>
    /// Finds every model under <paramref name="root"/>: the root itself when it is a model folder, else
    /// each sub-folder that is one, else each version folder inside a sub-folder.
    /// </summary>
    public static IReadOnlyList<ModelFolder> Discover(string root, ModelRepositoryOptions? options = null)
    {
        // Without a trailing separator: a model folder's name is its last part ("models/tiny-shapes/" too).
        var full = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(root));
        if (!System.IO.Directory.Exists(full))
        {
            throw ModelLoadException.RepositoryNotFound(full, $"No model repository at '{full}'.");
        }

        if (IsModelFolder(full))
        {
            var single = Read(full, System.IO.Path.GetFileName(full), null, options);
            CheckOverrides(full, [single], options);
            return [single];
        }

        var models = new List<ModelFolder>();
        foreach (var folder in System.IO.Directory.EnumerateDirectories(full).Order(StringComparer.Ordinal))
        {
            var name = System.IO.Path.GetFileName(folder);
            if (IsModelFolder(folder))
            {
                models.Add(Read(folder, name, null, options));
                continue;
            }

            string[] versions;
            try
            {
                versions = [.. System.IO.Directory.EnumerateDirectories(folder).Where(IsModelFolder)];
            }
            catch (UnauthorizedAccessException)
            {
                // A folder this process may not list holds no model it could read (a volume's lost+found).
                continue;
            }

            models.AddRange(versions
                .OrderBy(System.IO.Path.GetFileName, ModelVersionComparer.Instance)
                .Select(versionFolder => Read(versionFolder, name, System.IO.Path.GetFileName(versionFolder), options)));
        }

        if (models.Count > 0)
        {
            CheckOverrides(full, models, options);
        }

        return models.Count > 0
            ? models
            : throw new ModelLoadException(System.IO.Path.Combine(full, "*", ModelFileName), "no model folder found in the model repository.");
    }

    // An override naming no model served is a typo or a stale setting: refused, whatever the repository's layout.
    private static void CheckOverrides(string full, IReadOnlyList<ModelFolder> models, ModelRepositoryOptions? options)
    {
        var unknown = options?.Overrides.Keys.Where(key => !models.Any(m => m.Name == key)).ToArray() ?? [];
        if (unknown.Length > 0)
        {
            throw new ModelLoadException(full, $"setting MaskFormer:Models:Overrides names model(s) {string.Join(", ", unknown)} that the repository does not hold (found: {string.Join(", ", models.Select(m => m.Name).Distinct())}).", ModelRepositoryOptions.SectionName + ":Overrides");
        }
    }
}
