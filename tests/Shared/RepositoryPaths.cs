namespace MaskFormer.Testing;

/// <summary>Finds files of the repository (the committed model) from the test's output folder.</summary>
internal static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    public static string Models => Path.Combine(Root, "models");

    public static string TinyShapes => Path.Combine(Models, "tiny-shapes");

    public static string HeldOut => Path.Combine(TinyShapes, "heldout");

    /// <summary>A copy of the committed model's three files (model, config, preprocessor) in <paramref name="target"/>, created if need be.</summary>
    public static string CopyTinyShapes(string target)
    {
        Directory.CreateDirectory(target);
        foreach (var file in new[] { "model.onnx", "config.json", "preprocessor_config.json" })
        {
            File.Copy(Path.Combine(TinyShapes, file), Path.Combine(target, file));
        }

        return target;
    }

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "MaskFormer.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"MaskFormer.sln not found above {AppContext.BaseDirectory}.");
    }
}
